"""TLS to upstreams: certificates verified against the system's CAs or SSL_CERT_FILE / SSL_CERT_DIR, and a
certificate that fails is a 502 that says why."""

import asyncio
import shutil
import subprocess

import httpx
import pytest
import trustme

from llmrelay.core.errors import UpstreamUnavailable
from llmrelay.providers.http1 import Client
from llmrelay.providers.http_client import UpstreamClient
from llmrelay.providers.upstream import Upstream
from tests.protocol.upstreams import (
    ScriptedUpstream,
    ThreadedUpstream,
    answering,
    read_request,
    server_context,
)

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 20))


def upstream_at(url: str) -> Upstream:
    return Upstream(name="openai", base_url=url, chat_url=url, probe_url=url, setting="OPENAI_BASE_URL")


async def through_node_client(url: str):
    client = UpstreamClient(2, 5)
    try:
        response = await client.post(upstream_at(url), b"{}", {})
        return response.status, await response.read()
    finally:
        await client.close()


def test_upstream_tls_certificate_signed_by_ssl_cert_file_is_trusted_and_kept_alive(test_ca, ca_file):
    async def scenario():
        async with ScriptedUpstream(answering(OK), server_context(test_ca, "127.0.0.1", "localhost")) as upstream:
            client = Client()
            for host in ("127.0.0.1", "127.0.0.1", "localhost"):
                response = await client.request("GET", upstream.url(host=host), {}, None, 2, 2)
                assert (response.status, await response.read()) == (200, b"ok")
            assert upstream.connections == 2  # one per host name: pools are per origin
            client.close()

    run(scenario())


def test_upstream_tls_ssl_cert_dir_is_honoured(test_ca, tmp_path, monkeypatch):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (it names the CA file by its hash)")
    pem = tmp_path / "ca.pem"
    test_ca.cert_pem.write_to_path(str(pem))
    digest = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(pem)], check=True,
                            capture_output=True, text=True).stdout.strip()
    directory = tmp_path / "certs"
    directory.mkdir()
    shutil.copy(pem, directory / f"{digest}.0")
    monkeypatch.setenv("SSL_CERT_DIR", str(directory))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))

    async def scenario():
        async with ScriptedUpstream(answering(OK), server_context(test_ca, "127.0.0.1")) as upstream:
            assert await through_node_client(upstream.url()) == (200, b"ok")

    run(scenario())


def test_upstream_tls_untrusted_certificate_is_a_502_saying_why(ca_file):
    stranger = trustme.CA()

    async def scenario():
        async with ScriptedUpstream(answering(OK), server_context(stranger, "127.0.0.1")) as upstream:
            with pytest.raises(UpstreamUnavailable) as caught:
                await through_node_client(upstream.url())
            return caught.value

    error = run(scenario())
    assert error.status == 502
    assert "certificate of the openai upstream" in str(error)
    assert "could not be verified (unable to get local issuer certificate)" in str(error)
    assert "SSL_CERT_FILE" in str(error)


def test_upstream_tls_certificate_for_another_host_is_a_502_saying_why(test_ca, ca_file):
    async def scenario():
        async with ScriptedUpstream(answering(OK), server_context(test_ca, "other.example")) as upstream:
            with pytest.raises(UpstreamUnavailable) as caught:
                await through_node_client(upstream.url())
            return caught.value

    error = run(scenario())
    assert "could not be verified (Hostname mismatch" in str(error) or "IP address mismatch" in str(error)


def chat_answer():
    body = (b'{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,'
            b'"message":{"role":"assistant","content":"over tls"},"finish_reason":"stop"}],'
            b'"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}')
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    async def handler(reader, writer, number):
        while (await read_request(reader)) is not None:
            writer.write(answer)
            await writer.drain()
    return handler


def test_upstream_tls_node_honours_ssl_cert_file_and_reports_a_bad_certificate(test_ca, tmp_path, start_node):
    upstream = ThreadedUpstream(chat_answer(), server_context(test_ca, "127.0.0.1"))
    trusted, stranger = tmp_path / "trusted.pem", tmp_path / "stranger.pem"
    test_ca.cert_pem.write_to_path(str(trusted))
    trustme.CA().cert_pem.write_to_path(str(stranger))
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": upstream.url("/v1"), "LLMRELAY_RETRIES": "0"}
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    try:
        node = start_node({**env, "SSL_CERT_FILE": str(trusted)})
        answer = httpx.post(node.url + "/v1/chat/completions", json=request, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == "over tls"

        node = start_node({**env, "SSL_CERT_FILE": str(stranger)})
        answer = httpx.post(node.url + "/v1/chat/completions", json=request, timeout=10)
        assert answer.status_code == 502, answer.text
        message = answer.json()["error"]["message"]
        assert "certificate" in message and "could not be verified" in message, message
    finally:
        upstream.stop()


def test_upstream_tls_probe_says_why_a_certificate_failed(ca_file):
    stranger = trustme.CA()

    async def scenario():
        async with ScriptedUpstream(answering(OK), server_context(stranger, "127.0.0.1")) as upstream:
            client = UpstreamClient(2, 5)
            report = await client.probe(upstream_at(upstream.url()), 2)
            await client.close()
            return report

    report = run(scenario())
    assert report["ready"] is False
    assert report["error"] == "its certificate could not be verified (unable to get local issuer certificate)"
