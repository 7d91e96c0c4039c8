"""How /api/v1/chat fails: each case ends in a clear JSON error with the right status, never a hang."""

import json
import time

import httpx
import pytest

from tests.support.blackhole import Blackhole
from tests.support.node import free_port


def post(node, content: bytes, **kwargs):
    return httpx.post(node.url + "/api/v1/chat", content=content, timeout=15, **kwargs)


def chat_body(model: str, stream: bool = False) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream,
                       "max_tokens": 100}).encode()


def assert_error(response, status: int, error_type: str, *words: str):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["type"] == error_type
    for word in words:
        assert word in error["message"]
    return error


@pytest.mark.parametrize("body, words", [
    (b"this is not json", ["not valid JSON"]),
    (b'["model", "llama3"]', ["JSON object"]),
    (b'{"messages": []}', ['"model"']),
    (b'{"model": 42}', ['"model"']),
    (b'{"model": ""}', ['"model"']),
    (b'{"model": "llama3", "x": "\xff\xfe"}', ["not valid JSON"]),  # invalid UTF-8
    (b"", ["not valid JSON"]),
    # Ollama's Go decoder would take the second, case-insensitively: the node must not check one, send another
    (b'{"model": "llama3", "Model": "other"}', ['"model" and "Model"']),
])
def test_bad_bodies_get_400(node, ollama, body, words):
    assert_error(post(node, body), 400, "invalid_request_error", *words)
    assert not ollama.requests, "nothing reaches the upstream"


def test_body_over_the_limit_gets_413_before_it_is_forwarded(start_node, ollama):
    node = start_node({"LLM_CHAT_URL": ollama.url, "LLMRELAY_MAX_BODY_BYTES": "1000"})
    big = json.dumps({"model": "llama3", "messages": [{"role": "user", "content": "x" * 2000}]}).encode()
    assert_error(post(node, big), 413, "request_too_large", "LLMRELAY_MAX_BODY_BYTES")

    def chunked():  # no Content-Length: the limit is enforced while reading
        yield big[:500]
        yield big[500:]

    assert_error(post(node, chunked()), 413, "request_too_large")
    assert not ollama.requests
    assert post(node, chat_body("llama3")).status_code == 200, "a body under the limit still works"


def test_default_body_limit_is_ten_mebibytes(node, ollama):
    just_over = b'{"model": "llama3", "pad": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    assert_error(post(node, just_over), 413, "request_too_large")
    under = b'{"model": "llama3", "stream": false, "pad": "' + b"x" * (10 * 1024 * 1024 - 100) + b'"}'
    assert post(node, under).status_code == 200


@pytest.mark.parametrize("model, variable", [("llama3", "LLM_CHAT_URL"), ("gpt-4o", "OPENAI_API_KEY"),
                                              ("claude-sonnet-4-5", "ANTHROPIC_API_KEY")])
def test_no_upstream_configured_gets_503_naming_the_variable(start_node, model, variable):
    node = start_node({"LLMRELAY_EMBEDDED": "false"})
    assert_error(post(node, chat_body(model)), 503, "no_upstream_configured", variable, model)


def test_refused_connection_gets_502(start_node):
    node = start_node({"LLM_CHAT_URL": f"http://127.0.0.1:{free_port()}"})
    assert_error(post(node, chat_body("llama3")), 502, "upstream_unavailable", "connection refused",
                 "LLM_CHAT_URL")


def test_unresolvable_host_gets_502(start_node):
    node = start_node({"LLM_CHAT_URL": "http://no-such-host.invalid:11434"})
    assert_error(post(node, chat_body("llama3")), 502, "upstream_unavailable", "does not resolve")


def test_connect_timeout_gets_504(start_node):
    blackhole = Blackhole()
    try:
        node = start_node({"LLM_CHAT_URL": blackhole.url, "LLMRELAY_CONNECT_TIMEOUT": "0.5", "LLMRELAY_RETRIES": "0"})
        started = time.monotonic()
        assert_error(post(node, chat_body("llama3")), 504, "upstream_timeout", "connection",
                     "LLMRELAY_CONNECT_TIMEOUT")
        assert time.monotonic() - started < 5
    finally:
        blackhole.close()


def test_first_byte_timeout_gets_504(start_node, ollama):
    ollama.slow_seconds = 3
    node = start_node({"LLM_CHAT_URL": ollama.url, "LLMRELAY_FIRST_BYTE_TIMEOUT": "0.5", "LLMRELAY_RETRIES": "0"})
    started = time.monotonic()
    assert_error(post(node, chat_body("slow")), 504, "upstream_timeout", "LLMRELAY_FIRST_BYTE_TIMEOUT")
    assert time.monotonic() - started < 2.5


def test_ndjson_stream_broken_midway_ends_with_an_error_line(node, ollama):
    with httpx.stream("POST", node.url + "/api/v1/chat", content=chat_body("die-midway", True),
                      timeout=10) as response:
        assert response.status_code == 200
        body = response.read()
    lines = [json.loads(line) for line in body.splitlines()]
    assert [line["message"]["content"] for line in lines[:2]] == ["The", " sky"]
    assert lines[-1]["error"]["type"] == "upstream_unavailable"
    assert "broke off" in lines[-1]["error"]["message"]


@pytest.mark.parametrize("model", ["gpt-die-midway", "claude-die-midway"])
def test_sse_stream_broken_midway_ends_with_an_error_event(node, model):
    with httpx.stream("POST", node.url + "/api/v1/chat", content=chat_body(model, True), timeout=10) as response:
        assert response.status_code == 200
        body = response.read().decode()
    events = body.split("\n\n")
    assert events[-1] == ""
    last = events[-2]
    assert last.startswith("event: error\ndata: ")
    error = json.loads(last.removeprefix("event: error\ndata: "))
    assert error["type"] == "error"
    assert error["error"]["type"] == "upstream_unavailable"


@pytest.mark.parametrize("model, fixture", [("hang", "ollama"), ("gpt-hang", "openai_upstream"),
                                            ("claude-hang", "anthropic_upstream")])
def test_client_disconnect_closes_the_upstream_connection(node, request, model, fixture):
    upstream = request.getfixturevalue(fixture)
    with httpx.stream("POST", node.url + "/api/v1/chat", content=chat_body(model, True), timeout=10) as response:
        next(response.iter_raw())  # the upstream has started answering, then hangs
        assert not upstream.disconnected.is_set()
    # Leaving the block closes the client's connection.
    assert upstream.disconnected.wait(3), "the upstream never saw its connection closed"
    node.wait_for_log(" status=200 ")


def test_client_disconnect_before_the_answer_starts_cancels_too(node, ollama):
    ollama.slow_seconds = 5
    with pytest.raises(httpx.ReadTimeout):
        post_short = httpx.post(node.url + "/api/v1/chat", content=chat_body("slow"), timeout=0.5)
        del post_short
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not ollama.requests:
        time.sleep(0.01)
    assert ollama.requests
    node.wait_for_log("status=499")
