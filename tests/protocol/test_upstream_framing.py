"""The upstream client's framing: interim answers, which connections are reused, and answers that lie about
their length. Against scripted loopback upstreams; every test checks what the next request on the pool gets."""

import asyncio

import httpx
import pytest

from llmrelay.core.errors import UpstreamUnavailable
from llmrelay.providers.http1 import (
    Client,
    ConnectionLost,
    FirstByteTimeout,
    IdleTimeout,
)
from llmrelay.providers.http_client import UpstreamClient
from llmrelay.providers.upstream import Upstream
from tests.protocol.upstreams import (
    ScriptedUpstream,
    ThreadedUpstream,
    answering,
    first_connection_then,
    read_request,
)


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 20))


async def get(client: Client, url: str, method: str = "GET") -> tuple[int, bytes]:
    response = await client.request(method, url, {}, None, 2, 2, idle_timeout=2)
    return response.status, await asyncio.wait_for(response.read(), 5)


def test_upstream_103_early_hints_never_leaks_to_next_request():
    async def handler(reader, writer, number):
        await read_request(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)  # the interim answer arrives on its own
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX-Final: yes\r\n\r\nA")
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB")
        await writer.drain()
        await read_request(reader)

    async def scenario():
        async with ScriptedUpstream(handler) as upstream:
            client = Client()
            response = await client.request("GET", upstream.url(), {}, None, 2, 2)
            assert response.status == 200
            assert response.headers == {"content-length": "1", "x-final": "yes"}  # no Link from the 103
            assert await response.read() == b"A"
            assert await get(client, upstream.url()) == (200, b"B")
            assert upstream.connections == 1
            client.close()

    run(scenario())


def test_upstream_100_continue_in_the_same_packet_as_the_answer_is_skipped():
    answer = b"HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"

    async def scenario():
        async with ScriptedUpstream(answering(answer)) as upstream:
            client = Client()
            response = await client.request("GET", upstream.url(), {}, None, 2, 2)
            assert (response.status, response.raw_headers) == (201, [(b"Content-Length", b"2")])
            assert await response.read() == b"ok"
            assert await get(client, upstream.url()) == (201, b"ok")
            assert upstream.connections == 1
            client.close()

    run(scenario())


def test_upstream_connection_is_reused_after_a_complete_length_or_chunked_answer():
    with_length = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nsec\r\n3\r\nond\r\n0\r\nX-T: 1\r\n\r\n"

    async def scenario():
        async with ScriptedUpstream(answering(with_length, chunked)) as upstream:
            client = Client()
            assert await get(client, upstream.url()) == (200, b"first")
            assert await get(client, upstream.url()) == (200, b"second")
            assert await get(client, upstream.url()) == (200, b"second")
            assert upstream.connections == 1
            client.close()

    run(scenario())


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
], ids=["connection-close", "http-1.0-keep-alive"])
def test_upstream_answer_without_http11_keep_alive_is_not_reused(answer):
    async def scenario():
        async with ScriptedUpstream(answering(answer)) as upstream:  # it would answer again: the client must not ask
            client = Client()
            for _ in range(3):
                assert await get(client, upstream.url()) == (200, b"ok")
            assert upstream.connections == 3
            client.close()

    run(scenario())


def test_upstream_head_answer_has_no_body_and_the_connection_is_reused():
    log = []
    answers = (b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",  # the length a GET's body would have
               b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody")

    async def scenario():
        async with ScriptedUpstream(answering(*answers, log=log)) as upstream:
            client = Client()
            response = await client.request("HEAD", upstream.url(), {}, None, 2, 2)
            assert response.headers["content-length"] == "1000"
            assert await asyncio.wait_for(response.read(), 2) == b""
            assert await get(client, upstream.url()) == (200, b"body")
            assert upstream.connections == 1
            client.close()

    run(scenario())
    assert log[0].startswith(b"HEAD /x ") and log[1].startswith(b"GET /x ")


def test_upstream_head_answer_with_bytes_after_its_head_is_not_reused():
    answers = (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    async def strict():
        async with ScriptedUpstream(answering(*answers)) as upstream:
            client = Client()
            assert await get(client, upstream.url(), "HEAD") == (200, b"")
            # A new connection: on the old one, "extra" would be read as the start of the next answer.
            await get(client, upstream.url())
            assert upstream.connections == 2
            client.close()

    run(strict())


@pytest.mark.parametrize("status", [204, 304])
def test_upstream_204_and_304_have_no_body_whatever_their_headers_say(status):
    answers = (b"HTTP/1.1 %d Nothing\r\nContent-Length: 7\r\n\r\n" % status,
               b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nsomething")

    async def scenario():
        async with ScriptedUpstream(answering(*answers)) as upstream:
            client = Client()
            assert await get(client, upstream.url()) == (status, b"")
            assert await get(client, upstream.url()) == (200, b"something")  # the next answer, framed on its own
            client.close()

    run(scenario())


# "10  ": llhttp allows spaces around the digits; such an answer cut short must not pass for a complete one.
@pytest.mark.parametrize("declared", [b"10", b"10  "], ids=["plain", "content_length_with_spaces"])
def test_upstream_content_length_shorter_than_sent_then_close_is_an_error(declared):
    async def handler(reader, writer, number):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: " + declared + b"\r\n\r\nshort")
        await writer.drain()  # and the connection closes

    async def scenario():
        async with ScriptedUpstream(handler) as upstream:
            client = Client()
            response = await client.request("GET", upstream.url(), {}, None, 2, 2)
            assert response.content_length == 10
            with pytest.raises(ConnectionLost):
                await response.read()
            assert not client.pools[("http", "127.0.0.1", upstream.port, None)].idle
            client.close()

    run(scenario())


def test_upstream_bytes_past_content_length_fail_the_request_and_close_the_connection():
    lying = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nstolen"
    honest = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmine"

    async def scenario():  # a second request on the first connection would get "stolen"
        async with ScriptedUpstream(first_connection_then(lying, honest)) as upstream:
            client = Client()
            response = await client.request("GET", upstream.url(), {}, None, 2, 2)
            with pytest.raises(ConnectionLost, match="more than its answer"):
                await response.read()
            assert await get(client, upstream.url()) == (200, b"mine")
            assert upstream.connections == 2
            client.close()

    run(scenario())


def test_upstream_garbage_past_content_length_fails_the_request():
    async def scenario():
        garbage = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\x00garbage"
        async with ScriptedUpstream(answering(garbage)) as upstream:
            client = Client()
            response = await client.request("GET", upstream.url(), {}, None, 2, 2)
            with pytest.raises(ConnectionLost):
                await response.read()
            client.close()

    run(scenario())


def test_upstream_unsolicited_answer_on_an_idle_connection_is_never_handed_to_the_next_request():
    async def handler(reader, writer, number):
        while (await read_request(reader)) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmine")
            if number == 1:
                await asyncio.sleep(0.05)  # then, while the connection sits in the pool:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nstolen")
            await writer.drain()

    async def scenario():
        async with ScriptedUpstream(handler) as upstream:
            client = Client()
            assert await get(client, upstream.url()) == (200, b"mine")
            await asyncio.sleep(0.2)
            assert await get(client, upstream.url()) == (200, b"mine")
            assert upstream.connections == 2
            client.close()

    run(scenario())


def test_upstream_malformed_chunk_is_an_error_and_the_connection_is_not_reused():
    bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc\r\nzz\r\n"
    good = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def scenario():
        async with ScriptedUpstream(first_connection_then(bad, good)) as upstream:
            client = Client()
            response = await client.request("GET", upstream.url(), {}, None, 2, 2)
            with pytest.raises(ConnectionLost):
                await response.read()
            assert await get(client, upstream.url()) == (200, b"ok")
            assert upstream.connections == 2
            client.close()

    run(scenario())


def test_upstream_idle_timeout_mid_body_closes_the_connection():
    async def handler(reader, writer, number):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf!")
        await writer.drain()
        await reader.read()  # then silence, until the client hangs up

    async def scenario():
        async with ScriptedUpstream(handler) as upstream:
            client = Client()
            response = await client.request("GET", upstream.url(), {}, None, 2, 2, idle_timeout=0.2)
            with pytest.raises(IdleTimeout):
                await response.read()
            assert not client.pools[("http", "127.0.0.1", upstream.port, None)].idle
            await asyncio.sleep(0.1)
            assert upstream.open == 0  # the upstream saw the connection go
            client.close()

    run(scenario())


def test_upstream_request_cancelled_before_its_answer_closes_the_connection():
    async def handler(reader, writer, number):
        await read_request(reader)
        await reader.read()  # never answers

    async def scenario():
        async with ScriptedUpstream(handler) as upstream:
            client = Client()
            task = asyncio.ensure_future(client.request("GET", upstream.url(), {}, None, 2, 2))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.1)
            assert upstream.open == 0
            assert not client.pools[("http", "127.0.0.1", upstream.port, None)].idle
            client.close()

    run(scenario())


def test_upstream_body_cancelled_mid_read_is_not_reused():
    async def handler(reader, writer, number):
        while (await read_request(reader)) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\npart\r\n")
            await writer.drain()
            if number == 1:
                await reader.read()
                return
            writer.write(b"0\r\n\r\n")

    async def scenario():
        async with ScriptedUpstream(handler) as upstream:
            client = Client()
            response = await client.request("GET", upstream.url(), {}, None, 2, 2)
            assert await response.next_chunk() == b"part"
            response.close()  # the relay stops reading: its client went away
            assert await get(client, upstream.url()) == (200, b"part")
            assert upstream.connections == 2
            client.close()

    run(scenario())


def test_upstream_first_byte_timeout_closes_the_connection():
    async def handler(reader, writer, number):
        await read_request(reader)
        await reader.read()  # never answers

    async def scenario():
        async with ScriptedUpstream(handler) as upstream:
            client = Client()
            with pytest.raises(FirstByteTimeout):
                await client.request("GET", upstream.url(), {}, None, 2, 0.2)
            await asyncio.sleep(0.1)
            assert upstream.open == 0
            pool = client.pools[("http", "127.0.0.1", upstream.port, None)]
            assert (len(pool.idle), pool.opened) == (0, 0)
            client.close()

    run(scenario())


def endless(first: bytes, line: bytes, then: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmine"):
    """A handler whose first connection answers with `first`, then `line` over and over until the client hangs
    up; later connections answer with `then`."""
    async def handler(reader, writer, number):
        while (await read_request(reader)) is not None:
            if number > 1:
                writer.write(then)
                await writer.drain()
                continue
            writer.write(first)
            while True:
                writer.write(line)
                await writer.drain()
    return handler


@pytest.mark.parametrize("line", [b"X-Filler: " + b"a" * 1000 + b"\r\n", b"a" * 1000, b"HTTP/1.1 100 Continue\r\n\r\n"],
                         ids=["endless-lines", "one-endless-line", "endless-interim-answers"])
def test_upstream_headers_without_a_size_limit_fail_the_request_and_close_the_connection(line):
    first = b"HTTP/1.1 200 OK\r\n" + (b"X-Filler: " if line == b"a" * 1000 else b"")
    if line.startswith(b"HTTP/"):
        first = b""

    async def scenario():
        async with ScriptedUpstream(endless(first, line)) as upstream:
            client = Client()
            with pytest.raises(ConnectionLost, match="the upstream's headers are larger than 64 KiB"):
                await client.request("GET", upstream.url(), {}, None, 2, 5)  # well before the first-byte timeout
            assert await get(client, upstream.url()) == (200, b"mine")
            assert upstream.connections == 2
            await asyncio.sleep(0.1)
            assert upstream.open == 1  # the first connection was closed
            client.close()

    run(scenario())


def test_upstream_headers_without_a_size_limit_in_the_same_packet_as_the_body():
    big = b"HTTP/1.1 200 OK\r\n" + b"X-Filler: %s\r\n" % (b"a" * 1000) * 70 + b"Content-Length: 2\r\n\r\nok"
    within = b"HTTP/1.1 200 OK\r\n" + b"X-Filler: %s\r\n" % (b"a" * 1000) * 60 + b"Content-Length: 4\r\n\r\nmine"

    async def scenario():
        async with ScriptedUpstream(first_connection_then(big, within)) as upstream:
            client = Client()
            with pytest.raises(ConnectionLost, match="the upstream's headers are larger than 64 KiB"):
                await client.request("GET", upstream.url(), {}, None, 2, 2)
            response = await client.request("GET", upstream.url(), {}, None, 2, 2)  # 60 KB of headers: fine
            assert (len(response.raw_headers), await response.read()) == (61, b"mine")
            client.close()

    run(scenario())


def test_upstream_headers_without_a_count_limit_fail_the_request():
    many = b"HTTP/1.1 200 OK\r\n" + b"A: b\r\n" * 300 + b"Content-Length: 2\r\n\r\nok"
    enough = b"HTTP/1.1 200 OK\r\n" + b"A: b\r\n" * 250 + b"Content-Length: 4\r\n\r\nmine"

    async def scenario():
        async with ScriptedUpstream(first_connection_then(many, enough)) as upstream:
            client = Client()
            with pytest.raises(ConnectionLost, match="the upstream sent more than 256 headers"):
                await client.request("GET", upstream.url(), {}, None, 2, 2)
            assert await get(client, upstream.url()) == (200, b"mine")
            client.close()

    run(scenario())


def test_upstream_trailers_are_not_added_to_the_headers():
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\n"

    async def scenario():
        async with ScriptedUpstream(answering(chunked)) as upstream:
            client = Client()
            for _ in range(2):
                response = await client.request("GET", upstream.url(), {}, None, 2, 2)
                assert await response.read() == b"ok"
                assert response.raw_headers == [(b"Transfer-Encoding", b"chunked")]
            assert upstream.connections == 1
            client.close()

    run(scenario())


@pytest.mark.parametrize("line", [b"X-Trailer: " + b"a" * 1000 + b"\r\n", b"a" * 1000, b"A: b\r\n"],
                         ids=["endless-lines", "one-endless-line", "endless-small-lines"])
def test_upstream_trailers_without_a_size_limit_fail_the_answer(line):
    first = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nhalf\r\n0\r\n"
    if line == b"a" * 1000:
        first += b"X-Trailer: "

    async def scenario():
        async with ScriptedUpstream(endless(first, line)) as upstream:
            client = Client()
            response = await client.request("GET", upstream.url(), {}, None, 2, 2, idle_timeout=5)
            assert response.raw_headers == [(b"Transfer-Encoding", b"chunked")]
            with pytest.raises(ConnectionLost, match="the upstream sent more than 256 trailers|the upstream's "
                                                     "trailers .*are larger than 64 KiB"):
                await asyncio.wait_for(response.read(), 4)  # well before the idle timeout
            assert await get(client, upstream.url()) == (200, b"mine")
            assert upstream.connections == 2
            client.close()

    run(scenario())


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello",
    b"HTTP/1.1 101 Switching Protocols\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nstolen",
], ids=["with-upgrade", "bare"])
def test_upstream_101_switching_protocols_is_relayed_as_a_final_answer(answer):
    errors = []

    async def handler(reader, writer, number):
        while (await read_request(reader)) is not None:
            writer.write(answer if number == 1 else b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmine")
            await writer.drain()

    async def scenario():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))
        async with ScriptedUpstream(handler) as upstream:
            client = Client()
            with pytest.raises(ConnectionLost, match="the upstream switched protocols"):
                await client.request("GET", upstream.url(), {}, None, 2, 2)
            assert await get(client, upstream.url()) == (200, b"mine")
            assert upstream.connections == 2
            client.close()

    run(scenario())
    assert errors == []  # no "Fatal error on transport" from an exception escaping data_received


def test_upstream_101_switching_protocols_is_relayed_by_the_node_as_a_final_answer(start_node):
    body = (b'{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,'
            b'"message":{"role":"assistant","content":"mine"},"finish_reason":"stop"}]}')
    answers = [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
               b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)]

    async def handler(reader, writer, number):
        while (await read_request(reader)) is not None:
            writer.write(answers.pop(0) if len(answers) > 1 else answers[0])
            await writer.drain()

    upstream = ThreadedUpstream(handler)
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    try:
        node = start_node({"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": upstream.url("/v1"),
                           "LLMRELAY_RETRIES": "0"})
        with httpx.Client(base_url=node.url, timeout=10) as client:  # one kept-alive connection to the node
            answer = client.post("/v1/chat/completions", json=request)
            assert answer.status_code == 502, answer.text
            assert "the upstream switched protocols" in answer.json()["error"]["message"]
            answer = client.post("/v1/chat/completions", json=request)
            assert answer.status_code == 200, answer.text
            assert answer.json()["choices"][0]["message"]["content"] == "mine"
        assert "Fatal error" not in node.logs()
    finally:
        upstream.stop()


@pytest.mark.parametrize("interim", [
    b"HTTP/1.1 150 X\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 199 X\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 103 Early Hints\r\nContent-Length: 5\r\n\r\nhello",
], ids=["150-length", "199-chunked", "103-length"])
def test_upstream_interim_answer_body_is_merged_into_the_final_body(interim):
    answer = interim + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def scenario():
        async with ScriptedUpstream(first_connection_then(answer, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmine")
                                    ) as upstream:
            client = Client()
            with pytest.raises(ConnectionLost, match="interim answer .* has a body"):
                response = await client.request("GET", upstream.url(), {}, None, 2, 2)
                await response.read()  # without the fix: b"hellook"
            assert await get(client, upstream.url()) == (200, b"mine")
            assert upstream.connections == 2
            client.close()

    run(scenario())


def test_upstream_interim_answer_saying_its_length_is_0_is_skipped():
    answer = b"HTTP/1.1 103 Early Hints\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def scenario():
        async with ScriptedUpstream(answering(answer)) as upstream:
            client = Client()
            assert await get(client, upstream.url()) == (200, b"ok")
            assert await get(client, upstream.url()) == (200, b"ok")
            assert upstream.connections == 1
            client.close()

    run(scenario())


def test_upstream_headers_without_a_size_limit_reach_the_client_as_a_clear_502():
    async def scenario():
        async with ScriptedUpstream(endless(b"HTTP/1.1 200 OK\r\n", b"X-Filler: " + b"a" * 1000 + b"\r\n")) as upstream:
            url = upstream.url("/v1/chat/completions")
            client = UpstreamClient(2, 5)
            with pytest.raises(UpstreamUnavailable) as caught:
                await client.post(Upstream(name="openai", base_url=url, chat_url=url, probe_url=url,
                                           setting="OPENAI_BASE_URL"), b"{}", {})
            await client.close()
            return caught.value

    error = run(scenario())
    assert error.status == 502
    assert str(error).startswith("the openai upstream at http://127.0.0.1:"), str(error)
    assert str(error).endswith("/v1/chat/completions answered in a way the node will not relay (the upstream's "
                               "headers are larger than 64 KiB)"), str(error)
