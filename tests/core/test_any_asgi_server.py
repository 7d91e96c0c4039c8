"""The node's app under uvicorn's own HTTP protocol: a plain ASGI server, without the node's scope extensions
(the direct send, the disconnect callback), still gets whole answers and streams, sent as ASGI messages."""

import json

import httpx
import pytest
import uvicorn

from llmrelay.app import create_app
from tests.conftest import OPENAI_KEY
from tests.support.in_process import serving
from tests.support.node import free_port


@pytest.fixture
def plain_server(clean_env, monkeypatch, ollama, openai_upstream):
    monkeypatch.setenv("LLM_CHAT_URL", ollama.url + "/api/chat")
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", openai_upstream.url + "/v1")
    monkeypatch.setenv("LLMRELAY_EMBEDDED", "false")
    monkeypatch.setenv("LLMRELAY_DATA_DIR", str(clean_env / "data"))
    port = free_port()
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                            lifespan="on", log_config=None)
    with serving(uvicorn.Server(config)):
        yield f"http://127.0.0.1:{port}"


def test_a_whole_answer_and_a_stream_through_a_plain_asgi_server(plain_server, ollama):
    body = {"model": "llama3", "messages": [{"role": "user", "content": "why is the sky blue?"}]}
    whole = httpx.post(plain_server + "/api/v1/chat", json={**body, "stream": False}, timeout=10)
    assert whole.status_code == 200
    assert whole.json()["message"]["content"].startswith("The sky is blue")
    assert whole.headers["x-request-id"]

    ollama.release.set()  # the fake's held-back last chunk goes at once
    with httpx.stream("POST", plain_server + "/api/v1/chat", json={**body, "stream": True}, timeout=10) as streamed:
        assert streamed.status_code == 200
        lines = [json.loads(line) for line in streamed.iter_lines() if line]
    assert lines[-1]["done"] is True
    assert "".join(line["message"]["content"] for line in lines).startswith("The sky is blue")


def test_an_openai_stream_through_a_plain_asgi_server(plain_server, openai_upstream):
    openai_upstream.release.set()
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "why is the sky blue?"}]}
    with httpx.stream("POST", plain_server + "/v1/chat/completions", json=body, timeout=10) as streamed:
        assert streamed.status_code == 200
        assert streamed.headers["content-type"].startswith("text/event-stream")
        events = [line for line in streamed.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    text = "".join(json.loads(event[6:])["choices"][0]["delta"].get("content") or ""
                   for event in events[:-1] if json.loads(event[6:])["choices"])
    assert text.startswith("The sky is blue")


def test_a_bad_request_is_answered_in_the_apis_shape_through_a_plain_asgi_server(plain_server):
    answer = httpx.post(plain_server + "/v1/chat/completions", content=b"{not json", timeout=10)
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
