"""The per-host connection cap: requests beyond it wait in line for a connection, up to the first-byte
deadline, and never open more."""

import asyncio

import pytest

from llmrelay.core.errors import UpstreamTimeout
from llmrelay.providers.http1 import Client, PoolTimeout
from llmrelay.providers.http_client import UpstreamClient
from llmrelay.providers.upstream import Upstream
from tests.protocol.upstreams import ScriptedUpstream, read_request


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 20))


def slow(seconds: float, order: list | None = None):
    async def handler(reader, writer, number):
        while (request := await read_request(reader)) is not None:
            if order is not None:
                order.append(request[1])
            await asyncio.sleep(seconds)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(request[1]), request[1]))
            await writer.drain()
    return handler


async def post(client: Client, url: str, body: bytes, first_byte_timeout: float = 5) -> bytes:
    response = await client.request("POST", url, {}, body, 2, first_byte_timeout)
    return await response.read()


def test_upstream_cap_of_2_with_5_slow_requests_never_opens_more_than_2():
    order = []

    async def scenario():
        async with ScriptedUpstream(slow(0.15, order)) as upstream:
            client = Client(max_connections=2)
            bodies = [b"r%d" % n for n in range(5)]
            tasks = []
            for body in bodies:  # started one after another, so the line has an order
                tasks.append(asyncio.ensure_future(post(client, upstream.url(), body)))
                await asyncio.sleep(0.03)
            assert await asyncio.gather(*tasks) == bodies
            assert upstream.most_open == 2
            assert upstream.connections == 2  # the waiting requests were handed the returned connections
            client.close()

    run(scenario())
    assert sorted(order[:2]) == [b"r0", b"r1"] and order[2:] == [b"r2", b"r3", b"r4"]  # first come, first served


def test_upstream_waiting_for_a_connection_ends_at_the_first_byte_deadline():
    async def scenario():
        async with ScriptedUpstream(slow(1.0)) as upstream:
            client = Client(max_connections=1)
            first = asyncio.ensure_future(post(client, upstream.url(), b"a"))
            await asyncio.sleep(0.05)
            with pytest.raises(PoolTimeout):
                await post(client, upstream.url(), b"b", first_byte_timeout=0.2)
            assert await first == b"a"
            assert await post(client, upstream.url(), b"c") == b"c"  # the timed-out waiter took no slot
            assert upstream.connections == 1
            client.close()

    run(scenario())


def test_upstream_closed_connection_passes_its_slot_to_the_next_in_line():
    async def handler(reader, writer, number):
        request = await read_request(reader)
        await asyncio.sleep(0.1)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (
            len(request[1]), request[1]))
        await writer.drain()

    async def scenario():
        async with ScriptedUpstream(handler) as upstream:
            client = Client(max_connections=1)
            results = await asyncio.gather(*(post(client, upstream.url(), b"%d" % n) for n in range(3)))
            assert results == [b"0", b"1", b"2"]
            assert upstream.most_open == 1 and upstream.connections == 3
            client.close()

    run(scenario())


def test_upstream_cancelled_waiter_leaves_the_line_without_taking_a_slot():
    async def scenario():
        async with ScriptedUpstream(slow(0.2)) as upstream:
            client = Client(max_connections=1)
            first = asyncio.ensure_future(post(client, upstream.url(), b"a"))
            await asyncio.sleep(0.05)
            waiting = asyncio.ensure_future(post(client, upstream.url(), b"b"))
            await asyncio.sleep(0.05)
            waiting.cancel()
            assert await first == b"a"
            assert await post(client, upstream.url(), b"c") == b"c"
            pool = client.pools[("http", "127.0.0.1", upstream.port, None)]
            assert (pool.opened, len(pool.waiters)) == (1, 0)
            client.close()

    run(scenario())


def test_upstream_pool_timeout_is_a_504_naming_the_setting():
    async def scenario():
        async with ScriptedUpstream(slow(1.0)) as upstream:
            upstream_ = Upstream(name="ollama", base_url=upstream.url(""), chat_url=upstream.url("/api/chat"),
                                 probe_url="", setting="LLM_CHAT_URL", max_connections=1, first_byte_timeout=0.2)
            client = UpstreamClient(2, 5)
            await client.open([upstream_])
            first = asyncio.ensure_future(client._client.request("POST", upstream_.chat_url, {}, b"a", 2, 5))
            await asyncio.sleep(0.05)
            with pytest.raises(UpstreamTimeout, match="all 1 connections .* LLMRELAY_MAX_CONNECTIONS_PER_HOST"):
                await client.post(upstream_, b"b", {})
            (await first).close()
            await client.close()

    run(scenario())


def test_upstream_max_connections_from_the_config_file_caps_the_deployments_host(clean_env):
    from llmrelay.routing.models import ModelCatalog
    from llmrelay.settings import Settings

    settings = Settings(
        llm_chat_url="http://127.0.0.1:9/api/chat", max_connections_per_host=50,
        models=[{"name": "small", "deployments": [
            {"provider": "ollama", "base_url": "http://10.0.0.1:11434", "max_connections": 3}]}])
    catalog = ModelCatalog(settings)
    assert catalog.configured["small"].deployments[0].upstream.max_connections == 3
    assert catalog.ollama.max_connections == 50

    async def scenario():
        client = UpstreamClient(2, 5)
        await client.open(catalog.upstreams)
        assert client._client.pool("http://10.0.0.1:11434/api/chat")[0].limit == 3
        assert client._client.pool("http://127.0.0.1:9/api/chat")[0].limit == 50
        await client.close()

    run(scenario())


@pytest.mark.parametrize("seed", [7, 11])
def test_upstream_pool_keeps_its_count_through_cancels_timeouts_and_closes(monkeypatch, seed):
    """Many requests over a cap of 3, some cancelled, some timing out in line, some answers closing their
    connection: no more than 3 connections open at any moment (counted on the client's side: the upstream
    notices a close a little later), and afterwards no slot is lost or double-counted and the line is empty."""
    import random

    from llmrelay.providers import http1

    rng = random.Random(seed)
    made = []
    connection_made = http1.Connection.connection_made
    monkeypatch.setattr(http1.Connection, "connection_made",
                        lambda self, transport: (made.append(self), connection_made(self, transport)))

    async def handler(reader, writer, number):
        while (await read_request(reader)) is not None:
            await asyncio.sleep(rng.choice((0, 0.01, 0.05)))
            close = rng.random() < 0.2
            writer.write(b"HTTP/1.1 200 OK\r\n%sContent-Length: 2\r\n\r\nok" % (
                b"Connection: close\r\n" if close else b""))
            await writer.drain()
            if close:
                return

    async def one(client, url):
        try:
            response = await client.request("GET", url, {}, None, 2, rng.choice((0.02, 0.2, 2)))
            await response.read()
        except TimeoutError:
            pass

    async def scenario():
        async with ScriptedUpstream(handler) as upstream:
            client = Client(max_connections=3)
            most = 0

            async def watch():
                nonlocal most
                while True:
                    most = max(most, sum(1 for connection in made if not connection.closed))
                    await asyncio.sleep(0)

            watcher = asyncio.ensure_future(watch())
            tasks = [asyncio.ensure_future(one(client, upstream.url())) for _ in range(200)]
            for task in rng.sample(tasks, 40):
                asyncio.get_running_loop().call_later(rng.random() * 0.3, task.cancel)
            await asyncio.gather(*tasks, return_exceptions=True)
            watcher.cancel()
            await asyncio.sleep(0.1)
            pool = client.pools[("http", "127.0.0.1", upstream.port, None)]
            assert 0 < most <= 3 and len(made) > 3
            assert not pool.waiters
            assert pool.opened == sum(1 for connection in pool.idle if not connection.closed) == upstream.open
            for _ in range(5):
                response = await client.request("GET", upstream.url(), {}, None, 2, 2)
                assert await response.read() == b"ok"
            client.close()

    run(scenario())


def test_upstream_node_caps_connections_per_host_from_its_settings_and_config_file(tmp_path, start_node):
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from tests.protocol.upstreams import ThreadedUpstream

    body = (b'{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":'
            b'{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}')

    async def handler(reader, writer, number):
        while (await read_request(reader)) is not None:
            await asyncio.sleep(0.3)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
                len(body), body))
            await writer.drain()

    def five_at_once(node, path: str, model: str) -> list[int]:
        request = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": False}
        with ThreadPoolExecutor(5) as pool:
            return list(pool.map(lambda _: httpx.post(node.url + path, json=request, timeout=20).status_code,
                                 range(5)))

    default_capped, config_capped = ThreadedUpstream(handler), ThreadedUpstream(handler)
    config = tmp_path / "llmrelay.yaml"
    config.write_text(f"models:\n  - name: capped\n    deployments:\n      - provider: openai\n"
                      f"        base_url: {config_capped.url('/v1')}\n        max_connections: 2\n")
    try:
        node = start_node({"LLM_CHAT_URL": default_capped.url("/api/chat"), "LLMRELAY_MAX_CONNECTIONS_PER_HOST": "3",
                           "LLMRELAY_CONFIG": str(config), "OPENAI_API_KEY": "sk-test"})
        assert five_at_once(node, "/api/v1/chat", "llama3") == [200] * 5
        assert five_at_once(node, "/v1/chat/completions", "capped") == [200] * 5
        assert default_capped.upstream.most_open == 3
        assert config_capped.upstream.most_open == 2
    finally:
        default_capped.stop()
        config_capped.stop()
