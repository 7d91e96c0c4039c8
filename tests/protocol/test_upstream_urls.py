"""How the node names an upstream to its clients (errors, /ready) and in its log: never with the credentials
a URL may carry, in its user:password part or its query string (`?key=`)."""

import asyncio

import httpx
import pytest

from llmrelay.core.errors import UpstreamTimeout, UpstreamUnavailable
from llmrelay.providers.http_client import UpstreamClient
from llmrelay.providers.upstream import Upstream
from tests.protocol.upstreams import ScriptedUpstream, read_request
from tests.support.node import free_port

SECRET = "s3cr3t-in-the-query"


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 20))


@pytest.mark.parametrize("url, shown", [
    ("http://10.0.0.1:8080/v1/chat?key=" + SECRET, "http://10.0.0.1:8080/v1/chat"),
    ("https://user:" + SECRET + "@api.example/v1/chat?key=" + SECRET + "#" + SECRET, "https://api.example/v1/chat"),
    ("http://[::1]:11434/api/chat?" + SECRET, "http://[::1]:11434/api/chat"),
    ("http://10.0.0.1/api/chat#" + SECRET, "http://10.0.0.1/api/chat"),
    ("http://10.0.0.1/api/chat", "http://10.0.0.1/api/chat"),
    ("local:/models/a?b#c.gguf", "local:/models/a?b#c.gguf"),  # a file's path, not a URL with a query
])
def test_upstream_display_url_keeps_the_query_string(url, shown):
    upstream = Upstream(name="ollama", base_url=url, chat_url=url, probe_url=url, setting="LLM_CHAT_URL")
    assert upstream.display_url == shown


def test_upstream_display_url_keeps_the_query_string_in_the_clients_errors():
    """A refused connection, a pool timeout and a probe: each message names the upstream, none its key."""
    async def slow(reader, writer, number):
        while (await read_request(reader)) is not None:
            await asyncio.sleep(1)

    async def scenario():
        dead = f"http://127.0.0.1:{free_port()}/api/chat?key={SECRET}"
        refused = Upstream(name="ollama", base_url=dead, chat_url=dead, probe_url=dead, setting="LLM_CHAT_URL")
        client = UpstreamClient(2, 5)
        messages = []
        with pytest.raises(UpstreamUnavailable) as caught:
            await client.post(refused, b"{}", {})
        messages.append(str(caught.value))
        messages.append((await client.probe(refused, 2))["error"] + " " + (await client.probe(refused, 2))["url"])
        async with ScriptedUpstream(slow) as upstream:
            url = upstream.url(f"/api/chat?key={SECRET}")
            busy = Upstream(name="ollama", base_url=url, chat_url=url, probe_url=url, setting="LLM_CHAT_URL",
                            max_connections=1, first_byte_timeout=0.2)
            await client.open([busy])
            first = asyncio.ensure_future(client._client.request("POST", busy.chat_url, {}, b"a", 2, 5))
            await asyncio.sleep(0.05)
            with pytest.raises(UpstreamTimeout) as caught:  # waiting in line for the one connection allowed
                await client.post(busy, b"b", {})
            messages.append(str(caught.value))
            first.cancel()
            with pytest.raises(UpstreamTimeout) as caught:  # no answer within the first-byte timeout
                await client.post(busy, b"c", {})
            messages.append(str(caught.value))
        await client.close()
        return messages

    messages = run(scenario())
    assert "connection refused" in messages[0] and "127.0.0.1" in messages[0], messages
    assert "connections the node may open" in messages[2] and "did not start answering" in messages[3], messages
    for message in messages:
        assert "/api/chat" in message or "cannot connect" in message, messages
        assert SECRET not in message and "key=" not in message, messages


def test_upstream_display_url_keeps_the_query_string_in_a_nodes_answers_ready_and_log(start_node):
    node = start_node({"LLM_CHAT_URL": f"http://127.0.0.1:{free_port()}/api/chat?key={SECRET}",
                       "LLMRELAY_RETRIES": "0"})
    answer = httpx.post(node.url + "/api/v1/chat", timeout=10,
                        json={"model": "llama3", "messages": [{"role": "user", "content": "hi"}], "stream": False})
    assert answer.status_code == 502, answer.text
    assert "/api/chat" in answer.text and SECRET not in answer.text, answer.text
    ready = httpx.get(node.url + "/ready", timeout=10).text
    assert "/api/chat" in ready and SECRET not in ready, ready
    assert SECRET not in node.logs()
