"""The upstream client's framing: interim answers, which connections are reused, and answers that lie about
their length. Against scripted loopback upstreams; every test checks what the next request on the pool gets."""

import asyncio

import pytest

from llmrelay.providers.http1 import (
    Client,
    ConnectionLost,
    FirstByteTimeout,
    IdleTimeout,
)
from tests.protocol.upstreams import (
    ScriptedUpstream,
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


def test_upstream_content_length_shorter_than_sent_then_close_is_an_error():
    async def handler(reader, writer, number):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
        await writer.drain()  # and the connection closes

    async def scenario():
        async with ScriptedUpstream(handler) as upstream:
            client = Client()
            response = await client.request("GET", upstream.url(), {}, None, 2, 2)
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
