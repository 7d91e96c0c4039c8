"""Translation details between surfaces and providers, checked on what the fake upstream received."""

import json

import httpx
import pytest

from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.support.node import Node


@pytest.fixture(scope="module")
def node(ollama, openai_upstream, anthropic_upstream, cloudflare, tmp_path_factory):
    directory = tmp_path_factory.mktemp("translation")
    (directory / "llmrelay.yaml").write_text(f"""
models:
  - name: big-context
    deployments:
      - provider: ollama
        base_url: {ollama.url}
        model: llama3
        options: {{num_ctx: 16384}}
  - name: workers
    deployments:
      - provider: cloudflare
        base_url: {cloudflare.url}/ai/run
        model: "@cf/meta/llama-3-8b-instruct"
""")
    env = {"LLM_CHAT_URL": ollama.url, "OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": openai_upstream.url + "/v1",
           "ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_BASE_URL": anthropic_upstream.url,
           "LLM_CF_URL": cloudflare.url + "/ai/run", "LLM_CF_TOKEN": "cf-test-token"}
    with Node(env, cwd=directory) as running:
        yield running


def post(node, path, payload, headers=None, **kwargs):
    return httpx.post(node.url + path, json=payload, headers=headers, timeout=10, **kwargs)


def sent(upstream) -> dict:
    return json.loads(upstream.last().body)


USER = [{"role": "user", "content": "why is the sky blue?"}]


def test_openai_parameters_become_ollama_options(node, ollama):
    response = post(node, "/v1/chat/completions", {
        "model": "llama3", "messages": USER, "temperature": 0.2, "top_p": 0.9, "max_tokens": 64, "stop": "END",
        "seed": 7, "presence_penalty": 0.5, "frequency_penalty": 0.1, "response_format": {"type": "json_object"}})
    assert response.status_code == 200, response.text
    request = sent(ollama)
    assert request["options"] == {"temperature": 0.2, "top_p": 0.9, "num_predict": 64, "stop": ["END"], "seed": 7,
                                  "presence_penalty": 0.5, "frequency_penalty": 0.1}
    assert request["format"] == "json"
    assert request["stream"] is False


def test_json_schema_becomes_ollama_format(node, ollama):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    post(node, "/v1/chat/completions", {"model": "llama3", "messages": USER,
                                        "response_format": {"type": "json_schema",
                                                            "json_schema": {"name": "a", "schema": schema}}})
    assert sent(ollama)["format"] == schema


def test_ollama_options_become_openai_parameters(node, openai_upstream):
    response = post(node, "/api/chat", {"model": "gpt-4o", "messages": USER, "stream": False, "format": "json",
                                        "options": {"temperature": 0.3, "num_predict": 50, "seed": 1, "num_ctx": 8192}})
    assert response.status_code == 200, response.text
    request = sent(openai_upstream)
    assert (request["temperature"], request["max_tokens"], request["seed"]) == (0.3, 50, 1)
    assert request["response_format"] == {"type": "json_object"}
    assert "options" not in request and "num_ctx" not in json.dumps(request)


def test_anthropic_system_becomes_a_system_message_and_back(node, ollama, anthropic_upstream):
    post(node, "/v1/messages", {"model": "llama3", "system": "Be brief.", "messages": USER, "max_tokens": 20})
    assert sent(ollama)["messages"][0] == {"role": "system", "content": "Be brief."}
    post(node, "/v1/chat/completions", {"model": "claude-sonnet-4-5", "messages": [
        {"role": "system", "content": "Be brief."}, *USER]})
    request = sent(anthropic_upstream)
    assert request["system"] == "Be brief."
    assert all(message["role"] != "system" for message in request["messages"])
    assert request["max_tokens"] > 0, "Anthropic needs max_tokens even when the OpenAI client gave none"


def test_multi_turn_conversation_keeps_its_order(node, anthropic_upstream):
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
             {"role": "user", "content": "why is the sky blue?"}]
    assert post(node, "/api/chat", {"model": "claude-x", "messages": turns, "stream": False}).status_code == 200
    assert [(m["role"], m["content"][0]["text"]) for m in sent(anthropic_upstream)["messages"]] == [
        ("user", "hi"), ("assistant", "hello"), ("user", "why is the sky blue?")]


def test_num_ctx_reaches_ollama_from_the_config_file_and_from_an_openai_client(node, ollama):
    post(node, "/v1/chat/completions", {"model": "big-context", "messages": USER})
    assert sent(ollama)["options"]["num_ctx"] == 16384
    assert sent(ollama)["model"] == "llama3"
    post(node, "/v1/chat/completions", {"model": "big-context", "messages": USER, "options": {"num_ctx": 32768}})
    assert sent(ollama)["options"]["num_ctx"] == 32768, "the client's own option wins"


def test_untranslatable_field_is_a_400_naming_it(node, anthropic_upstream):
    response = post(node, "/v1/chat/completions", {"model": "claude-x", "messages": USER, "seed": 3, "logprobs": True})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "seed" in error["message"] and "logprobs" in error["message"]
    assert "X-LLMRelay-Drop-Params" in error["message"]
    assert error["type"] == "invalid_request_error"
    assert not anthropic_upstream.requests


def test_drop_params_header_lets_it_through(node, anthropic_upstream):
    response = post(node, "/v1/chat/completions", {"model": "claude-x", "messages": USER, "seed": 3, "logprobs": True},
                    headers={"X-LLMRelay-Drop-Params": "true"})
    assert response.status_code == 200, response.text
    assert "seed" not in sent(anthropic_upstream) and "logprobs" not in sent(anthropic_upstream)


def test_n_other_than_one_is_refused(node):
    response = post(node, "/v1/chat/completions", {"model": "llama3", "messages": USER, "n": 2})
    assert response.status_code == 400 and "n must be 1" in response.json()["error"]["message"]


@pytest.mark.parametrize("path, payload, model_sent", [
    ("/v1/chat/completions", {"model": "gpt-4o", "messages": USER, "vendor_field": {"x": [1, 2.50]}}, "gpt-4o"),
    ("/v1/messages", {"model": "claude-x", "messages": USER, "max_tokens": 9, "vendor_field": 1.0}, "claude-x"),
    ("/api/chat", {"model": "ollama/llama3", "messages": USER, "stream": False, "think": True}, "llama3"),
])
def test_same_api_passes_bytes_through_apart_from_the_model(node, request, path, payload, model_sent):
    upstream = request.getfixturevalue({"/v1/chat/completions": "openai_upstream", "/v1/messages": "anthropic_upstream",
                                        "/api/chat": "ollama"}[path])
    body = json.dumps(payload, indent=1).encode()  # odd formatting that a re-encoder would lose
    response = httpx.post(node.url + path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert upstream.last().body == body.replace(json.dumps(payload["model"]).encode(), json.dumps(model_sent).encode())


def test_prompt_variable_adds_a_system_message_only_when_there_is_none(start_node, ollama, openai_upstream):
    node = start_node({"LLM_CHAT_URL": ollama.url, "PROMPT": "You are a helpful node.",
                       "OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": openai_upstream.url + "/v1"})
    post(node, "/v1/chat/completions", {"model": "llama3", "messages": USER})
    assert sent(ollama)["messages"][0] == {"role": "system", "content": "You are a helpful node."}
    post(node, "/v1/chat/completions", {"model": "gpt-4o", "messages": USER})  # same API: still added
    assert sent(openai_upstream)["messages"][0] == {"role": "system", "content": "You are a helpful node."}
    post(node, "/v1/chat/completions", {"model": "llama3", "messages": [{"role": "system", "content": "Mine."}, *USER]})
    assert [m["content"] for m in sent(ollama)["messages"] if m["role"] == "system"] == ["Mine."]
    body = json.dumps({"model": "llama3", "messages": USER}).encode()
    httpx.post(node.url + "/api/v1/chat", content=body)
    assert ollama.last().body == body, "the seed's pass-through is never changed"


def test_tool_arguments_stream_in_order_in_several_pieces(node):
    """OpenAI client, Anthropic upstream: each input_json_delta becomes one arguments delta, in order."""
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    with httpx.stream("POST", node.url + "/v1/chat/completions", timeout=10, json={
            "model": "claude-x", "messages": [{"role": "user", "content": "weather in Paris"}], "tools": tools,
            "stream": True}) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: {")]
    deltas = [json.loads(line[6:])["choices"][0]["delta"] for line in lines]
    pieces = [d["tool_calls"][0]["function"]["arguments"] for d in deltas
              if d.get("tool_calls") and "id" not in d["tool_calls"][0]]
    assert len(pieces) >= 3
    assert json.loads("".join(pieces)) == {"city": "Paris", "unit": "celsius", "days": 3}
    assert deltas[0]["role"] == "assistant"


@pytest.mark.parametrize("path, payload, check", [
    ("/v1/chat/completions", {"model": "gpt-die-midway", "messages": USER, "stream": True},
     lambda body: "data: {\"error\"" in body),
    ("/v1/chat/completions", {"model": "die-midway", "messages": USER, "stream": True},
     lambda body: "data: {\"error\"" in body and "[DONE]" not in body),
    ("/v1/messages", {"model": "die-midway", "messages": USER, "max_tokens": 9, "stream": True},
     lambda body: "event: error\ndata: {\"type\":\"error\"" in body),
    ("/api/chat", {"model": "gpt-die-midway", "messages": USER},
     lambda body: json.loads(body.strip().splitlines()[-1]).get("error")),
])
def test_mid_stream_failure_ends_with_an_error_in_the_surface_framing(node, path, payload, check):
    with httpx.stream("POST", node.url + path, json=payload, timeout=10) as response:
        assert response.status_code == 200
        body = response.read().decode()
    assert check(body), body


@pytest.mark.parametrize("path, payload, status, shape", [
    ("/v1/chat/completions", "not json", 400, lambda e: e["error"]["type"] == "invalid_request_error"),
    ("/v1/messages", {"model": "llama3", "messages": USER}, 400,
     lambda e: e["type"] == "error" and "max_tokens" in e["error"]["message"]),
    ("/api/chat", {"messages": USER}, 400, lambda e: isinstance(e["error"], str) and "model" in e["error"]),
    ("/api/chat", {"model": "claude-missing", "messages": USER, "stream": False}, 404,
     lambda e: isinstance(e["error"], str) and "claude-missing" in e["error"]),
    ("/v1/messages", {"model": "gpt-missing", "messages": USER, "max_tokens": 5}, 404,
     lambda e: e["error"]["type"] == "not_found_error"),
])
def test_errors_in_each_surfaces_shape(node, path, payload, status, shape):
    if isinstance(payload, str):
        response = httpx.post(node.url + path, content=payload.encode())
    else:
        response = post(node, path, payload)
    assert response.status_code == status, response.text
    assert shape(response.json()), response.text


def test_no_upstream_is_503_in_the_surface_shape(start_node):
    node = start_node({"LLMRELAY_EMBEDDED": "false"})
    response = post(node, "/v1/messages", {"model": "claude-x", "messages": USER, "max_tokens": 5})
    assert response.status_code == 503
    assert response.json()["type"] == "error" and "ANTHROPIC_API_KEY" in response.json()["error"]["message"]
    response = post(node, "/api/chat", {"model": "llama3", "messages": USER})
    assert response.status_code == 503 and "LLM_CHAT_URL" in response.json()["error"]


def test_model_lists_merge_the_config_file_and_ollama_tags(node):
    ids = [model["id"] for model in httpx.get(node.url + "/v1/models").json()["data"]]
    assert ids[:2] == ["big-context", "workers"] and "llama3:latest" in ids
    names = [model["name"] for model in httpx.get(node.url + "/api/tags").json()["models"]]
    assert {"llama3:latest", "big-context", "workers"} <= set(names)
    assert [m["id"] for m in httpx.get(node.url + "/api/v1/llm/models").json()["data"]] == ids


def test_ollama_show_version_and_generate(node, ollama, openai_upstream):
    show = post(node, "/api/show", {"model": "llama3"})
    assert show.status_code == 200 and show.json()["details"]["family"] == "llama"
    assert post(node, "/api/show", {"model": "gpt-4o"}).json()["details"]["family"] == "openai"
    assert httpx.get(node.url + "/api/version").json()["version"]
    generated = post(node, "/api/generate", {"model": "llama3", "prompt": "why?", "stream": False})
    assert generated.json()["response"].startswith("The sky is blue") and ollama.last().path == "/api/generate"
    translated = post(node, "/api/generate",
                      {"model": "gpt-4o", "prompt": "why?", "system": "Be brief.", "stream": False})
    assert translated.json()["response"].startswith("The sky is blue") and translated.json()["done"] is True
    assert sent(openai_upstream)["messages"][0] == {"role": "system", "content": "Be brief."}
    with httpx.stream("POST", node.url + "/api/generate", json={"model": "gpt-4o", "prompt": "why?"}) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert len(lines) > 2 and lines[-1]["done"] is True and lines[-1]["eval_count"] > 0
    assert "".join(line["response"] for line in lines).startswith("The sky is blue")


def test_embeddings_on_both_apis(node):
    ollama_style = post(node, "/api/embed", {"model": "llama3", "input": ["a", "bb"]}).json()
    assert ollama_style["embeddings"] == [[0.1, 0.2, 1.0], [0.1, 0.2, 2.0]] and ollama_style["prompt_eval_count"] == 6
    openai_style = post(node, "/v1/embeddings", {"model": "gpt-4o", "input": "abc"}).json()
    assert openai_style["data"][0]["embedding"] == [0.5, 3.0] and openai_style["usage"]["prompt_tokens"] == 2
    crossed = post(node, "/v1/embeddings", {"model": "llama3", "input": "abc"}).json()
    assert crossed["data"][0]["embedding"] == [0.1, 0.2, 3.0]
    refused = post(node, "/v1/embeddings", {"model": "claude-x", "input": "abc"})
    assert refused.status_code == 400 and "embeddings" in refused.json()["error"]["message"]


def test_count_tokens_exact_from_anthropic_and_estimated_elsewhere(node):
    payload = {"messages": USER, "max_tokens": 5}
    assert post(node, "/v1/messages/count_tokens", {"model": "claude-x", **payload}).json() == {"input_tokens": 42}
    assert post(node, "/v1/messages/count_tokens", {"model": "llama3", **payload}).json()["input_tokens"] > 0


def test_cloudflare_pass_through_and_translation(node, cloudflare):
    body = {"model": "@cf/meta/llama-3-8b-instruct", "messages": USER}
    response = post(node, "/api/v1/chat/cf", body)
    assert response.status_code == 200 and response.json()["result"]["response"].startswith("The sky is blue")
    assert cloudflare.last().path == "/ai/run/@cf/meta/llama-3-8b-instruct"
    assert cloudflare.last().headers["Authorization"] == "Bearer cf-test-token"
    translated = post(node, "/v1/chat/completions", {"model": "workers", "messages": USER})
    assert translated.json()["choices"][0]["message"]["content"].startswith("The sky is blue")
    assert translated.json()["usage"]["prompt_tokens"] == 12
    with httpx.stream("POST", node.url + "/v1/messages", json={"model": "workers", "messages": USER, "max_tokens": 9,
                                                               "stream": True}) as response:
        body = response.read().decode()
    assert body.count("text_delta") > 3 and "message_stop" in body


def test_openapi_describes_every_surface(node):
    paths = httpx.get(node.url + "/openapi.json").json()["paths"]
    for path in ("/api/v1/chat", "/v1/chat/completions", "/v1/models", "/v1/embeddings", "/v1/messages",
                 "/v1/messages/count_tokens", "/api/chat", "/api/generate", "/api/tags", "/api/show", "/api/version",
                 "/api/embed", "/api/v1/chat/cf", "/api/v1/llm/models"):
        assert path in paths, path
