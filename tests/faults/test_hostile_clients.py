"""Clients that misbehave: slow or endless headers, slow bodies, pipelining, deep nesting, wrong types."""

import json
import socket
import time

import httpx
import pytest


@pytest.fixture(scope="module")
def node(ollama, openai_upstream, tmp_path_factory):
    from tests.conftest import OPENAI_KEY
    from tests.support.node import Node
    env = {"LLM_CHAT_URL": ollama.url, "OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": openai_upstream.url + "/v1",
           "LLMRELAY_HEADER_TIMEOUT": "1", "LLMRELAY_BODY_TIMEOUT": "1",
           "LLMRELAY_MAX_HEADER_BYTES": "8192", "LLMRELAY_EMBEDDED": "false"}
    with Node(env, cwd=tmp_path_factory.mktemp("hostile")) as running:
        yield running


def connect(node) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", node.port), timeout=5)
    return sock


def read_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def test_slow_headers_are_cut_off(node):
    sock = connect(node)
    sock.sendall(b"POST /api/v1/chat HTTP/1.1\r\nHost: localhost\r\n")  # and never the rest
    started = time.monotonic()
    assert read_all(sock) == b""
    assert time.monotonic() - started < 4, "closed after the header timeout"


def test_a_silent_connection_is_closed_too(node):
    sock = connect(node)
    started = time.monotonic()
    assert read_all(sock) == b""
    assert time.monotonic() - started < 4


def test_endless_headers_get_431(node):
    sock = connect(node)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 20000)
    assert read_all(sock).startswith(b"HTTP/1.1 431")


def test_a_body_that_never_finishes_gets_408(node, ollama):
    sock = connect(node)
    sock.sendall(b"POST /api/v1/chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000\r\n\r\n{\"model\": \"llama3\"")
    answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408")
    assert not ollama.requests


def test_pipelined_requests_are_answered_in_order(node):
    body = json.dumps({"model": "llama3", "messages": [], "stream": False}).encode()
    request = (b"POST /api/v1/chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: "
               + str(len(body)).encode() + b"\r\n\r\n" + body)
    sock = connect(node)
    sock.sendall(request + b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    answer = read_all(sock)
    assert answer.count(b"HTTP/1.1 200") == 2
    assert answer.index(b'"done"') < answer.index(b'"status":"ok"')


@pytest.mark.parametrize("path, body", [
    ("/api/v1/chat", b"[" * 100_000 + b"]" * 100_000),
    ("/v1/chat/completions", b'{"model": "llama3", "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    ("/v1/chat/completions", b'{"model": "llama3", "messages": 5}'),
    ("/v1/chat/completions", b'{"model": "llama3", "messages": [{"role": "user", "content": {"a": 1}}]}'),
    ("/v1/chat/completions", b'{"model": "llama3", "messages": [], "temperature": "hot"}'),
    ("/v1/chat/completions", b'{"model": "llama3", "messages": [], "tools": [5]}'),
    ("/v1/messages", b'{"model": "llama3", "max_tokens": "ten", "messages": []}'),
    ("/v1/messages", b'{"model": "llama3", "max_tokens": 5, "messages": [{"role": "user", "content": [7]}]}'),
    # Ollama-API requests for a model served by OpenAI are decoded (same-API ones pass through unread).
    ("/api/chat", b'{"model": "gpt-4o", "messages": [{"role": "user", "images": "nope"}]}'),
    ("/api/chat", b'{"model": ["llama3"]}'),
    ("/api/generate", b'{"model": "gpt-4o", "prompt": 42}'),
    ("/v1/embeddings", b'{"model": "llama3", "input": [1, 2]}'),
])
def test_wrong_shapes_and_deep_nesting_get_400(node, path, body):
    response = httpx.post(node.url + path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]
    assert httpx.get(node.url + "/health").status_code == 200
