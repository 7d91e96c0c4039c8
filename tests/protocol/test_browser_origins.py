"""Browser-origin protection: no web page uses the node through a visitor's browser unless allowed."""

import json
import socket

import httpx
import pytest

MASTER = "master-key-0123456789abcdef"
BODY = json.dumps({"model": "llama3", "messages": [{"role": "user", "content": "hi"}], "stream": False})


@pytest.fixture
def open_node(start_node, node_env):
    return start_node({**node_env, "LLMRELAY_ALLOWED_ORIGINS": "https://app.example.com",
                       "LLMRELAY_ALLOWED_HOSTS": "llm.internal"})


def test_dns_rebinding_host_is_refused_on_an_open_node(open_node, ollama):
    response = httpx.post(open_node.url + "/api/chat", content=BODY, headers={"host": "evil.example.com"})
    assert response.status_code == 403
    assert "LLMRELAY_ALLOWED_HOSTS" in response.json()["error"]
    assert not ollama.requests


@pytest.mark.parametrize("host", ["localhost:8080", "127.0.0.1", "[::1]:8080", "llm.internal:8080",
                                  "app.localhost", "10.1.2.3:80"])
def test_hosts_that_name_the_node_are_served(open_node, host):
    assert httpx.get(open_node.url + "/health", headers={"host": host}).status_code == 200


def test_cross_site_text_plain_post_is_refused_in_the_clients_shape(open_node, ollama, openai_upstream):
    response = httpx.post(open_node.url + "/v1/chat/completions", content=BODY.replace("llama3", "gpt-4o"),
                          headers={"content-type": "text/plain", "origin": "https://evil.example.com"})
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["type"] == "permission_error" and "LLMRELAY_ALLOWED_ORIGINS" in error["message"]
    assert "access-control-allow-origin" not in response.headers
    assert not openai_upstream.requests


def test_null_origin_is_refused(open_node, ollama):
    response = httpx.post(open_node.url + "/api/chat", content=BODY, headers={"origin": "null"})
    assert response.status_code == 403


def test_the_nodes_own_pages_are_same_origin(open_node, ollama):
    response = httpx.post(open_node.url + "/api/chat", content=BODY, headers={"origin": open_node.url})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_allowed_origin_gets_cors_headers_on_answers_and_errors(open_node, ollama):
    origin = {"origin": "https://app.example.com"}
    response = httpx.post(open_node.url + "/api/chat", content=BODY, headers=origin)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "origin" in response.headers["vary"].lower()
    missing = httpx.get(open_node.url + "/nowhere", headers=origin)
    assert missing.status_code == 404
    assert missing.headers["access-control-allow-origin"] == "https://app.example.com"


def test_cors_preflight_for_an_allowed_origin(open_node):
    response = httpx.options(open_node.url + "/v1/chat/completions", headers={
        "origin": "https://app.example.com", "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type"})
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-headers"] == "authorization, content-type"


def test_cors_preflight_from_another_origin_is_refused(open_node):
    response = httpx.options(open_node.url + "/v1/chat/completions", headers={
        "origin": "https://evil.example.com", "access-control-request-method": "POST"})
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers


def test_keyed_node_serves_any_host_but_still_checks_origins(start_node, node_env, ollama):
    keyed = start_node({**node_env, "LLMRELAY_MASTER_KEY": MASTER})
    auth = {"authorization": f"Bearer {MASTER}", "host": "llm.example.com"}
    assert httpx.post(keyed.url + "/api/chat", content=BODY, headers=auth).status_code == 200
    refused = httpx.post(keyed.url + "/api/chat", content=BODY, headers={**auth, "origin": "https://evil.example.com"})
    assert refused.status_code == 403


@pytest.mark.parametrize("host", ["[::1]evil.example.com", "localhost:evil.example.com", "127.0.0.1:", "localhost."])
def test_hosts_that_only_look_like_the_node_are_refused(open_node, host):
    assert httpx.get(open_node.url + "/health", headers={"host": host}).status_code == 403


def test_two_host_headers_are_refused(open_node):
    with socket.create_connection(("127.0.0.1", open_node.port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nHost: evil.example.com\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 400 ")
