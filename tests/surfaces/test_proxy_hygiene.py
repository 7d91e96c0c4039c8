"""What crosses the node: hop-by-hop headers stop, client credentials stay, request ids go both ways,
upstream connections are reused."""

import json
import socket

import httpx

from tests.conftest import OPENAI_KEY
from tests.support.node import Node

BODY = json.dumps({"model": "llama3", "messages": [{"role": "user", "content": "hi"}], "stream": False}).encode()


def test_hop_by_hop_and_client_secrets_do_not_go_upstream(node, ollama):
    headers = {
        "content-type": "application/json",
        "connection": "keep-alive, x-private-hop",
        "keep-alive": "timeout=5",
        "te": "trailers",
        "x-private-hop": "only for the node",
        "proxy-authorization": "Basic c2VjcmV0",
        "authorization": "Bearer user-key-123",
        "cookie": "session=abc",
        "x-api-key": "user-key-456",
        "x-custom": "not on the allowlist",
        "user-agent": "my-app/1.0",
    }
    assert httpx.post(node.url + "/api/v1/chat", content=BODY, headers=headers).status_code == 200
    sent = {name.lower(): value for name, value in ollama.last().headers.items()}
    for name in ("keep-alive", "te", "x-private-hop", "proxy-authorization", "authorization", "cookie",
                 "x-api-key", "x-custom"):
        assert name not in sent, name
    assert sent["user-agent"] == "my-app/1.0"
    assert sent["content-type"] == "application/json"


def test_a_client_without_a_user_agent_is_relayed_as_the_node(node, ollama):
    request = (b"POST /api/v1/chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: "
               + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)  # httpx would add its own user agent
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
        sock.sendall(request)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    sent = {name.lower(): value for name, value in ollama.last().headers.items()}
    assert sent["user-agent"] == "llmrelay"
    assert sent["content-type"] == "application/json" and sent["accept-encoding"] == "identity"


def test_client_authorization_is_replaced_by_the_provider_key(node, openai_upstream):
    body = BODY.replace(b"llama3", b"gpt-4o")
    httpx.post(node.url + "/api/v1/chat", content=body, headers={"authorization": "Bearer user-key-123"})
    assert openai_upstream.last().headers["Authorization"] == "Bearer sk-test-openai-0123456789"


def test_request_id_is_generated_echoed_and_sent_upstream(node, ollama):
    response = httpx.post(node.url + "/api/v1/chat", content=BODY)
    generated = response.headers["x-request-id"]
    assert len(generated) >= 16
    assert ollama.last().headers["X-Request-ID"] == generated

    response = httpx.post(node.url + "/api/v1/chat", content=BODY, headers={"x-request-id": "client-id-42"})
    assert response.headers["x-request-id"] == "client-id-42"
    assert ollama.last().headers["X-Request-ID"] == "client-id-42"


def test_request_id_is_on_error_and_health_responses_too(node):
    assert httpx.post(node.url + "/api/v1/chat", content=b"nope").headers["x-request-id"]
    assert httpx.get(node.url + "/health").headers["x-request-id"]
    assert httpx.get(node.url + "/nowhere").headers["x-request-id"]


def test_an_unsafe_client_request_id_is_replaced(node, ollama):
    response = httpx.post(node.url + "/api/v1/chat", content=BODY, headers={"x-request-id": "a" * 500})
    assert response.headers["x-request-id"] != "a" * 500
    assert ollama.last().headers["X-Request-ID"] == response.headers["x-request-id"]


def test_upstream_connections_are_kept_alive_and_reused(node, ollama):
    for _ in range(5):
        # A fresh client connection each time: reuse must come from the node's own pool.
        assert httpx.post(node.url + "/api/v1/chat", content=BODY).status_code == 200
    assert len({recorded.peer_port for recorded in ollama.requests}) == 1


def test_upstream_response_headers_are_relayed_except_cookies_and_ids(node, openai_upstream):
    body = BODY.replace(b"llama3", b"gpt-4o")
    response = httpx.post(node.url + "/api/v1/chat", content=body, headers={"x-request-id": "mine"})
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.headers["openai-processing-ms"] == "12"
    assert response.headers["x-request-id"] == "mine"
    assert response.headers["x-upstream-request-id"] == "req_fake123"
    assert "set-cookie" not in response.headers
    assert int(response.headers["content-length"]) == len(response.content)


def test_configured_headers_fill_in_but_never_frame_or_double(tmp_path, openai_upstream):
    (tmp_path / "llmrelay.yaml").write_text(f"""
models:
  - name: team-gpt
    deployments:
      - provider: openai
        base_url: {openai_upstream.url}/v1
        model: gpt-4o
        api_key_env: TEAM_OPENAI_KEY
        headers: {{User-Agent: team-proxy/2, X-Org: acme, Host: elsewhere.example, Content-Length: "1",
                   Authorization: Bearer not-the-key}}
""")
    body = json.dumps({"model": "team-gpt", "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
               b"X-Org: mine\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    with Node({"LLMRELAY_EMBEDDED": "false", "TEAM_OPENAI_KEY": OPENAI_KEY}, cwd=tmp_path) as node:
        with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
            sock.sendall(request)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    seen = openai_upstream.last()
    sent = {name.lower(): value for name, value in seen.headers.items()}
    assert sent["user-agent"] == "team-proxy/2"  # the configured agent, not the node's beside it
    assert sorted(seen.names) == sorted(set(seen.names)), seen.names  # no header twice
    assert sent["x-org"] == "acme"  # the deployment's header; the client's is not on the allowlist
    assert sent["host"] == openai_upstream.url.removeprefix("http://")
    assert int(sent["content-length"]) == len(seen.body)
    assert sent["authorization"] == f"Bearer {OPENAI_KEY}"  # the credential, not a configured header of its name
