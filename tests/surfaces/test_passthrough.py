"""POST /api/v1/chat: routing by model, byte-for-byte forwarding, streaming as chunks arrive, upstream errors."""

import json

import httpx
import pytest

from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY

# Odd spacing, a float written as 1.0e0, an escaped slash and a nested "model": all must survive untouched.
ODD_BODY = (b'{"model" :  "llama3",\n "messages":[{"role":"user","content":"why is the sky blue? \\u00e9\\/"}],'
            b' "options": {"temperature": 1.0e0, "model": "keep-me"}, "stream": false, "unknown_field": [1, 2]}')


def post(node, body: bytes, path="/api/v1/chat", headers=None):
    return httpx.post(node.url + path, content=body,
                      headers={"content-type": "application/json", **(headers or {})}, timeout=10)


def chat_body(model: str, stream: bool | None = None) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": "why is the sky blue?"}], "max_tokens": 100}
    if stream is not None:
        body["stream"] = stream
    return json.dumps(body).encode()


def test_default_model_goes_to_llm_chat_url_byte_for_byte(node, ollama):
    response = post(node, ODD_BODY)
    assert response.status_code == 200
    assert ollama.last().path == "/api/chat"
    assert ollama.last().body == ODD_BODY
    assert response.json()["message"]["content"].startswith("The sky is blue")


def test_seed_alias_path_works_too(node, ollama):
    response = post(node, ODD_BODY, path="/v1/api/chat")
    assert response.status_code == 200
    assert ollama.last().body == ODD_BODY


def test_ollama_prefix_is_removed_and_nothing_else_changes(node, ollama):
    body = ODD_BODY.replace(b'"llama3"', b'"ollama/llama3"')
    assert post(node, body).status_code == 200
    assert ollama.last().body == ODD_BODY


@pytest.mark.parametrize("model", ["gpt-4o", "o1-mini", "o3", "o4-mini", "chatgpt-4o-latest"])
def test_openai_models_go_to_openai_with_the_node_key(node, openai_upstream, model):
    body = chat_body(model, stream=False)
    response = post(node, body, headers={"authorization": "Bearer client-secret"})
    assert response.status_code == 200, response.text
    recorded = openai_upstream.last()
    assert recorded.path == "/v1/chat/completions"
    assert recorded.body == body
    assert recorded.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    assert response.json()["object"] == "chat.completion"


def test_claude_models_go_to_anthropic_with_key_and_version(node, anthropic_upstream):
    body = chat_body("claude-sonnet-4-5", stream=False)
    response = post(node, body)
    assert response.status_code == 200, response.text
    recorded = anthropic_upstream.last()
    assert recorded.path == "/v1/messages"
    assert recorded.body == body
    assert recorded.headers["x-api-key"] == ANTHROPIC_KEY
    assert recorded.headers["anthropic-version"] == "2023-06-01"
    assert response.json()["content"][0]["text"].startswith("The sky is blue")


def test_a_client_anthropic_version_is_kept(node, anthropic_upstream):
    post(node, chat_body("claude-3-5-haiku", stream=False), headers={"anthropic-version": "2099-01-01"})
    assert anthropic_upstream.last().headers["anthropic-version"] == "2099-01-01"


def test_vendor_looking_models_reach_ollama_when_the_vendor_has_no_key(start_node, ollama):
    node = start_node({"LLM_CHAT_URL": ollama.url + "/api/chat"})
    for model in ("gpt-oss:20b", "claude-lookalike"):
        assert post(node, chat_body(model, stream=False)).status_code == 200
        assert json.loads(ollama.last().body)["model"] == model


@pytest.mark.parametrize("fixture, model, error", [
    ("ollama", "missing", {"error": "model 'missing' not found"}),
    ("openai_upstream", "gpt-missing", {"error": {"message": "The model `gpt-missing` does not exist.",
                                                  "type": "invalid_request_error", "param": None,
                                                  "code": "model_not_found"}}),
    ("anthropic_upstream", "claude-missing", {"type": "error", "error": {"type": "not_found_error",
                                                                        "message": "model: claude-missing"}}),
])
def test_upstream_errors_pass_through_unchanged(node, request, fixture, model, error):
    upstream = request.getfixturevalue(fixture)
    response = post(node, chat_body(model, stream=False))
    assert upstream.requests, "the request reached the upstream"
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == error


def test_vendor_errors_pass_through_unchanged(start_node, node_env, openai_upstream):
    # The node's OpenAI key is wrong: OpenAI's 401 and its body reach the client as they are.
    node = start_node({**node_env, "OPENAI_API_KEY": "sk-wrong-key-9999"})
    response = post(node, chat_body("gpt-4o", stream=False))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert "sk-wrong-key-9999" not in response.text


@pytest.mark.parametrize("fixture, model, content_type", [
    ("ollama", "hold-last", "application/x-ndjson"),
    ("openai_upstream", "gpt-hold-last", "text/event-stream"),
    ("anthropic_upstream", "claude-hold-last", "text/event-stream"),
])
def test_stream_chunks_reach_the_client_before_the_upstream_finishes(node, request, fixture, model,
                                                                       content_type):
    upstream = request.getfixturevalue(fixture)
    received = b""
    with httpx.stream("POST", node.url + "/api/v1/chat", content=chat_body(model, stream=True),
                      timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(content_type)
        for chunk in response.iter_raw():
            if not received:
                # The upstream is still holding its last chunk: this one came through on its own.
                assert not upstream.release.is_set()
                upstream.release.set()
            received += chunk
    assert upstream.release.is_set()
    if content_type == "application/x-ndjson":
        lines = [json.loads(line) for line in received.splitlines()]
        assert lines[-1]["done"] is True
        assert "".join(line["message"]["content"] for line in lines).startswith("The sky is blue")
    else:
        assert received.rstrip().endswith(b"data: [DONE]" if "openai" in fixture else b'{"type": "message_stop"}')
