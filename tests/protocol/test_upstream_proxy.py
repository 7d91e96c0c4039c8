"""Upstreams through an outbound proxy (HTTPS_PROXY, HTTP_PROXY, NO_PROXY), against a real tinyproxy: https
through a CONNECT tunnel with TLS inside, http as absolute-form requests; credentials never in errors."""

import asyncio

import httpx
import pytest

from llmrelay.core.errors import UpstreamUnavailable
from llmrelay.providers.http1 import Client
from llmrelay.providers.http_client import UpstreamClient
from llmrelay.providers.proxy import Proxies
from llmrelay.providers.upstream import Upstream
from tests.protocol.upstreams import (
    ScriptedUpstream,
    ThreadedUpstream,
    answering,
    server_context,
)

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 30))


def node_client(environ: dict) -> UpstreamClient:
    client = UpstreamClient(2, 5)
    client._client = Client(proxies=Proxies(environ))
    return client


async def post(client: UpstreamClient, url: str) -> tuple[int, bytes]:
    upstream = Upstream(name="openai", base_url=url, chat_url=url, probe_url=url, setting="OPENAI_BASE_URL")
    response = await client.post(upstream, b"{}", {})
    return response.status, await response.read()


def test_upstream_https_goes_through_a_connect_tunnel_with_tls_inside(test_ca, ca_file, tinyproxy):
    async def scenario():
        async with ScriptedUpstream(answering(OK), server_context(test_ca, "127.0.0.1")) as upstream:
            proxy = tinyproxy(connect_ports=(upstream.port,))
            client = node_client({"HTTPS_PROXY": proxy.url()})
            for _ in range(3):
                assert await post(client, upstream.url()) == (200, b"ok")
            assert upstream.connections == 1  # the tunnel is kept alive like any connection
            await client.close()
            return proxy.log(), upstream.port

    log, port = run(scenario())
    assert log.count(f"CONNECT 127.0.0.1:{port} HTTP/1.1") == 1, log


def test_upstream_http_goes_to_the_proxy_as_absolute_form_requests(tinyproxy):
    seen = []

    async def scenario():
        async with ScriptedUpstream(answering(OK, log=seen)) as upstream:
            proxy = tinyproxy()
            client = node_client({"http_proxy": proxy.url()})
            assert await post(client, upstream.url("/v1/chat")) == (200, b"ok")
            await client.close()
            return proxy.log(), upstream.port

    log, port = run(scenario())
    assert f"POST http://127.0.0.1:{port}/v1/chat HTTP/1.1" in log, log
    assert b"(tinyproxy/" in seen[0].lower()  # the upstream heard it from the proxy


def test_upstream_no_proxy_bypasses_the_proxy(tinyproxy):
    seen = []

    async def scenario():
        async with ScriptedUpstream(answering(OK, log=seen)) as upstream:
            proxy = tinyproxy()
            client = node_client({"HTTP_PROXY": proxy.url(), "NO_PROXY": "example.com, 127.0.0.1"})
            assert await post(client, upstream.url()) == (200, b"ok")
            await client.close()
            return proxy.log()

    log = run(scenario())
    assert "Request" not in log, log
    assert b"via:" not in seen[0].lower()


def test_upstream_proxy_refusing_connect_is_a_502_naming_the_proxy_without_credentials(test_ca, ca_file, tinyproxy):
    async def scenario():
        async with ScriptedUpstream(answering(OK), server_context(test_ca, "127.0.0.1")) as upstream:
            proxy = tinyproxy()  # CONNECT allowed to no port of the upstream's
            client = node_client({"HTTPS_PROXY": proxy.url("alice:s3cret")})
            with pytest.raises(UpstreamUnavailable) as caught:
                await post(client, upstream.url())
            await client.close()
            return str(caught.value), proxy.port, upstream.port

    message, proxy_port, port = run(scenario())
    assert f"the proxy http://127.0.0.1:{proxy_port} refused the tunnel to 127.0.0.1:{port} (HTTP/1.1 403" in message
    assert "alice" not in message and "s3cret" not in message


def test_upstream_proxy_credentials_are_sent_as_proxy_authorization(test_ca, ca_file, tinyproxy):
    async def scenario():
        async with ScriptedUpstream(answering(OK), server_context(test_ca, "127.0.0.1")) as upstream:
            plain = ScriptedUpstream(answering(OK))
            async with plain:
                proxy = tinyproxy(connect_ports=(upstream.port,), credentials="alice:s3cret")
                with_credentials = proxy.url("alice:s3cret")
                client = node_client({"https_proxy": with_credentials, "http_proxy": with_credentials})
                assert await post(client, upstream.url()) == (200, b"ok")  # CONNECT
                assert await post(client, plain.url()) == (200, b"ok")  # absolute form
                await client.close()

                messages = []
                anonymous = node_client({"HTTPS_PROXY": proxy.url(), "HTTP_PROXY": proxy.url()})
                for url in (upstream.url(), plain.url()):
                    with pytest.raises(UpstreamUnavailable) as caught:
                        await post(anonymous, url)
                    messages.append(str(caught.value))
                await anonymous.close()
                wrong = node_client({"HTTPS_PROXY": proxy.url("alice:wrong")})
                with pytest.raises(UpstreamUnavailable) as caught:
                    await post(wrong, upstream.url())
                messages.append(str(caught.value))
                await wrong.close()
                return messages

    messages = run(scenario())
    assert "407" in messages[0] and "407" in messages[1] and "401" in messages[2]  # tinyproxy's answer to a wrong one
    for message in messages:
        assert "check the credentials in the proxy URL" in message, message
        assert "wrong" not in message and "alice" not in message


def test_upstream_unreachable_proxy_is_a_502_naming_it():
    async def scenario():
        client = node_client({"HTTP_PROXY": "http://bob:pw@127.0.0.1:9"})
        with pytest.raises(UpstreamUnavailable) as caught:
            await post(client, "http://127.0.0.1:8/x")
        await client.close()
        return str(caught.value)

    message = run(scenario())
    assert "cannot connect to the proxy http://127.0.0.1:9 (connection refused)" in message
    assert "bob" not in message and "pw" not in message


def test_upstream_pools_are_kept_apart_by_proxy():
    client = Client(proxies=Proxies({"HTTP_PROXY": "http://127.0.0.1:3128", "NO_PROXY": "direct.example"}))
    proxied, target = client.pool("http://api.example/v1/x")
    direct, direct_target = client.pool("http://direct.example/v1/x")
    assert proxied.proxy is not None and direct.proxy is None
    assert target == b"http://api.example/v1/x" and direct_target == b"/v1/x"
    assert client.pool("https://api.example/v1/x")[0].proxy is None  # no HTTPS_PROXY


@pytest.mark.parametrize(("no_proxy", "host", "port", "bypassed"), [
    ("*", "anything.example", 443, True),
    ("example.com", "example.com", 443, True),
    ("example.com", "api.example.com", 443, True),
    (".example.com", "api.example.com", 443, True),
    ("*.example.com", "example.com", 443, True),
    ("example.com", "notexample.com", 443, False),
    ("example.com:8443", "example.com", 8443, True),
    ("example.com:8443", "example.com", 443, False),
    ("10.0.0.0/8", "10.1.2.3", 80, True),
    ("10.0.0.0/8", "11.1.2.3", 80, False),
    ("192.168.1.5", "192.168.1.5", 80, True),
    ("::1", "::1", 80, True),
    ("[::1]:8080", "::1", 8080, True),
    ("localhost,127.0.0.1", "127.0.0.1", 80, True),
    ("EXAMPLE.com", "Api.Example.COM", 80, True),
    ("", "example.com", 80, False),
])
def test_upstream_no_proxy_matching(no_proxy, host, port, bypassed):
    proxies = Proxies({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": no_proxy})
    assert proxies.bypassed(host, port) is bypassed
    assert (proxies.select("https", host, port) is None) is bypassed


def test_upstream_proxy_variables_lower_case_first_and_all_proxy_fallback():
    proxies = Proxies({"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:2", "ALL_PROXY": "http://all:3"})
    assert proxies.select("https", "x", 443).host == "lower"
    assert proxies.select("http", "x", 80).host == "all"
    assert Proxies({}).select("https", "x", 443) is None
    assert "not supported" in Proxies({"HTTPS_PROXY": "socks5://p:1080"}).select("https", "x", 443).problem


def test_upstream_node_reads_the_proxy_from_its_environment(tinyproxy, start_node):
    seen = []
    body = b'{"model":"llama3","message":{"role":"assistant","content":"via proxy"},"done":true}'
    upstream = ThreadedUpstream(answering(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                          b"Content-Length: %d\r\n\r\n%s" % (len(body), body), log=seen))
    proxy = tinyproxy()
    try:
        node = start_node({"LLM_CHAT_URL": upstream.url("/api/chat"), "HTTP_PROXY": proxy.url("carol:pw"),
                           "NO_PROXY": "example.com"})
        answer = httpx.post(node.url + "/api/v1/chat", timeout=10,
                            json={"model": "llama3", "messages": [{"role": "user", "content": "hi"}], "stream": False})
        assert answer.status_code == 200, answer.text
        assert answer.json()["message"]["content"] == "via proxy"
        assert b"(tinyproxy/" in seen[0].lower()
        assert "POST http://127.0.0.1:%d/api/chat" % upstream.upstream.port in proxy.log()
        assert "carol" not in node.logs() and "pw@" not in node.logs()
    finally:
        upstream.stop()


def test_upstream_probe_names_a_proxy_that_refuses(test_ca, ca_file, tinyproxy):
    async def scenario():
        async with ScriptedUpstream(answering(OK), server_context(test_ca, "127.0.0.1")) as upstream:
            proxy = tinyproxy()
            client = node_client({"HTTPS_PROXY": proxy.url("dave:secret")})
            url = upstream.url()
            report = await client.probe(Upstream(name="openai", base_url=url, chat_url=url, probe_url=url,
                                                 setting="OPENAI_BASE_URL"), 5)
            await client.close()
            return report, proxy.port

    report, port = run(scenario())
    assert report["ready"] is False
    assert report["error"].startswith(f"the proxy http://127.0.0.1:{port} refused the tunnel")
    assert "dave" not in report["error"] and "secret" not in report["error"]


def test_upstream_proxy_credentials_stay_out_of_repr():
    proxies = Proxies({"HTTPS_PROXY": "http://erin:t0ps3cret@proxy.example:3128"})
    client = Client(proxies=proxies)
    pool = client.pool("https://api.example/v1/x")[0]
    shown = repr(proxies.select("https", "api.example", 443)) + repr(list(client.pools))
    assert "erin" not in shown and "t0ps3cret" not in shown and "ZXJpbjp0MHBzM2NyZXQ" not in shown
    assert pool.proxy.authorization == b"Basic ZXJpbjp0MHBzM2NyZXQ="
