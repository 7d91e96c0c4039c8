"""The embedded model (SmolLM2-135M-Instruct through llama-cpp-python), for real: no mocks, short answers."""

import json
import subprocess
import sys
import threading
import time

import anthropic
import httpx
import openai
import pytest

from llmrelay.providers.local import embedded_model_path
from tests.support.node import Node

QUESTION = [{"role": "user", "content": "why is the sky blue?"}]


@pytest.fixture(scope="module")
def bare_node(tmp_path_factory):
    """A node with nothing configured: the embedded model answers."""
    with Node({"LLMRELAY_LOCAL_QUEUE": "1"}, cwd=tmp_path_factory.mktemp("bare")) as node:
        yield node


def ready_status(node) -> dict:
    return httpx.get(node.url + "/ready").json()["local_models"][0]


def wait_idle(node, timeout=20):
    deadline = time.monotonic() + timeout
    while ready_status(node)["generating"] and time.monotonic() < deadline:
        time.sleep(0.02)


def test_banner_names_the_embedded_model_and_how_to_change_it(bare_node):
    logs = bare_node.wait_for_log("serving the embedded model smollm2")
    assert "SmolLM2-135M-Instruct" in logs and "LLM_CHAT_URL" in logs


def test_quick_start_request_gets_an_ollama_answer_with_real_text(bare_node):
    response = httpx.post(bare_node.url + "/api/v1/chat", timeout=60, json={
        "model": "smollm2", "messages": QUESTION, "stream": False, "options": {"num_predict": 24}})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["done"] is True and answer["model"] == "smollm2"
    assert len(answer["message"]["content"].split()) >= 3, "words from a real model"
    assert answer["prompt_eval_count"] > 0 and 0 < answer["eval_count"] <= 24


def test_seed_endpoint_streams_ollama_ndjson(bare_node):
    with httpx.stream("POST", bare_node.url + "/api/v1/chat", timeout=60, json={
            "model": "local", "messages": QUESTION, "options": {"num_predict": 12}}) as response:
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert len(lines) > 5 and lines[-1]["done"] is True
    assert "".join(line["message"]["content"] for line in lines).strip()


@pytest.mark.parametrize("stream", [False, True])
def test_openai_sdk(bare_node, stream):
    client = openai.OpenAI(base_url=bare_node.url + "/v1", api_key="unused")
    if not stream:
        response = client.chat.completions.create(model="smollm2", messages=QUESTION, max_tokens=10)
        assert response.choices[0].message.content.strip()
        assert response.choices[0].finish_reason == "length"
        assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens == 10
        return
    pieces, usage = [], None
    for chunk in client.chat.completions.create(model="smollm2", messages=QUESTION, max_tokens=10, stream=True,
                                                stream_options={"include_usage": True}):
        pieces += [choice.delta.content for choice in chunk.choices if choice.delta.content]
        usage = chunk.usage or usage
    assert len(pieces) > 3, "token by token"
    assert usage.completion_tokens == 10 and usage.prompt_tokens > 0


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_sdk(bare_node, stream):
    client = anthropic.Anthropic(base_url=bare_node.url, api_key="unused")
    kwargs = {"model": "smollm2", "messages": QUESTION, "max_tokens": 8, "system": "Answer briefly."}
    if stream:
        with client.messages.stream(**kwargs) as events:
            deltas = sum(1 for event in events if event.type == "content_block_delta")
            message = events.get_final_message()
        assert deltas > 3
    else:
        message = client.messages.create(**kwargs)
    assert message.content[0].text.strip()
    assert message.stop_reason == "max_tokens"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens == 8


def test_ollama_api(bare_node):
    import ollama
    client = ollama.Client(host=bare_node.url)
    answer = client.chat(model="smollm2", messages=QUESTION, options={"num_predict": 6})
    assert answer.message.content.strip() and answer.eval_count == 6 and answer.done_reason == "length"
    parts = list(client.chat(model="smollm2", messages=QUESTION, options={"num_predict": 6}, stream=True))
    assert len(parts) > 3 and parts[-1].done


def test_any_model_name_reaches_the_embedded_model_on_a_bare_node(bare_node):
    response = httpx.post(bare_node.url + "/v1/chat/completions", timeout=60, json={
        "model": "llama3", "messages": QUESTION, "max_tokens": 4})
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"]


def test_seed_and_temperature_make_answers_repeatable(bare_node):
    def ask(seed):
        return httpx.post(bare_node.url + "/v1/chat/completions", timeout=60, json={
            "model": "smollm2", "messages": QUESTION, "max_tokens": 12, "temperature": 1.0, "seed": seed}
                          ).json()["choices"][0]["message"]["content"]
    assert ask(42) == ask(42)
    assert len({ask(seed) for seed in (1, 2, 3)}) > 1, "a different seed changes a temperature-1 answer"


def test_stop_sequence_is_honoured(bare_node):
    answer = httpx.post(bare_node.url + "/v1/chat/completions", timeout=60, json={
        "model": "smollm2", "messages": QUESTION, "max_tokens": 30, "stop": [" "]}).json()
    text = answer["choices"][0]["message"]["content"]
    assert text and " " not in text.strip()
    assert answer["choices"][0]["finish_reason"] == "stop"


def test_tools_and_images_are_refused_clearly(bare_node):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    refused = httpx.post(bare_node.url + "/v1/chat/completions", json={"model": "smollm2", "messages": QUESTION,
                                                                      "tools": tools})
    assert refused.status_code == 400 and "tools" in refused.json()["error"]["message"]
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]
    refused = httpx.post(bare_node.url + "/v1/chat/completions", json={"model": "smollm2", "messages": image})
    assert refused.status_code == 400 and "text only" in refused.json()["error"]["message"]


def test_event_loop_stays_responsive_during_a_long_generation(bare_node):
    done = threading.Event()

    def long_generation():
        httpx.post(bare_node.url + "/v1/chat/completions", timeout=120, json={
            "model": "smollm2", "messages": QUESTION, "max_tokens": 250})
        done.set()

    threading.Thread(target=long_generation).start()
    deadline = time.monotonic() + 5
    while not ready_status(bare_node)["generating"] and time.monotonic() < deadline:
        time.sleep(0.01)
    slowest = 0.0
    for _ in range(10):
        started = time.monotonic()
        assert httpx.get(bare_node.url + "/health").status_code == 200
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.05)
    assert not done.is_set(), "the generation was still running while /health answered"
    assert slowest < 0.5
    done.wait(120)


def test_client_disconnect_stops_the_generation(bare_node):
    wait_idle(bare_node)
    with httpx.stream("POST", bare_node.url + "/v1/chat/completions", timeout=60, json={
            "model": "smollm2", "messages": QUESTION, "max_tokens": 1500, "stream": True}) as response:
        lines = response.iter_lines()
        for _ in range(4):
            next(lines)
    deadline = time.monotonic() + 3
    while ready_status(bare_node)["generating"] and time.monotonic() < deadline:
        time.sleep(0.02)
    status = ready_status(bare_node)
    assert not status["generating"], "generation went on after the client left"
    time.sleep(0.3)
    assert ready_status(bare_node)["tokens_generated"] == status["tokens_generated"]


def test_requests_beyond_the_queue_get_429_with_retry_after(bare_node):
    wait_idle(bare_node)
    body = {"model": "smollm2", "messages": QUESTION, "max_tokens": 200, "stream": True}
    opened = []

    def hold():
        with httpx.stream("POST", bare_node.url + "/v1/chat/completions", json=body, timeout=60) as response:
            opened.append(response.status_code)
            for _ in response.iter_raw():
                pass

    holders = [threading.Thread(target=hold) for _ in range(2)]  # one generating, one waiting (queue of 1)
    for holder in holders:
        holder.start()
        time.sleep(0.3)
    refused = httpx.post(bare_node.url + "/v1/chat/completions", json=body, timeout=60)
    assert refused.status_code == 429
    assert refused.headers["retry-after"]
    assert refused.json()["error"]["type"] == "rate_limit_error"
    for holder in holders:
        holder.join(60)
    assert opened == [200, 200]


def test_local_provider_serves_any_gguf_from_the_config_file(tmp_path, ollama):
    (tmp_path / "llmrelay.yaml").write_text(f"""
models:
  - name: my-small-model
    deployments:
      - provider: local
        model_path: {embedded_model_path()}
        context_size: 1024
        threads: 1
""")
    with Node({"LLM_CHAT_URL": ollama.url}, cwd=tmp_path) as node:
        answer = httpx.post(node.url + "/v1/chat/completions", timeout=60, json={
            "model": "my-small-model", "messages": QUESTION, "max_tokens": 5}).json()
        assert answer["choices"][0]["message"]["content"] and answer["usage"]["completion_tokens"] == 5
        # Other models go to their upstream, and are answered at once while a long generation runs.
        generating = threading.Thread(target=lambda: httpx.post(node.url + "/v1/chat/completions", timeout=120, json={
            "model": "my-small-model", "messages": QUESTION, "max_tokens": 300}))
        generating.start()
        time.sleep(0.5)
        started = time.monotonic()
        other = httpx.post(node.url + "/v1/chat/completions", json={"model": "llama3", "messages": QUESTION})
        assert time.monotonic() - started < 0.5
        assert other.json()["choices"][0]["message"]["content"].startswith("The sky is blue")
        assert generating.is_alive(), "the generation was still running"
        generating.join(120)
        assert httpx.post(node.url + "/api/v1/chat", timeout=60, json={
            "model": "smollm2", "messages": QUESTION, "stream": False, "options": {"num_predict": 3}}).json()["done"]
        ids = [model["id"] for model in httpx.get(node.url + "/v1/models").json()["data"]]
        assert {"my-small-model", "smollm2"} <= set(ids)


def test_cli_chat_and_models(bare_node):
    listed = subprocess.run([sys.executable, "-m", "llmrelay", "models", "--url", bare_node.url],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "smollm2" in listed.stdout
    asked = subprocess.run([sys.executable, "-m", "llmrelay", "chat", "why is the sky blue?", "--url", bare_node.url,
                            "--model", "smollm2"], capture_output=True, text=True, timeout=120)
    assert asked.returncode == 0, asked.stderr
    assert len(asked.stdout.split()) >= 3
    interactive = subprocess.run([sys.executable, "-m", "llmrelay", "chat", "--url", bare_node.url],
                                 input="hello\nexit\n", capture_output=True, text=True, timeout=120)
    assert interactive.returncode == 0 and interactive.stdout.count("> ") == 2
    unreachable = subprocess.run([sys.executable, "-m", "llmrelay", "models", "--url", "http://127.0.0.1:9"],
                                 capture_output=True, text=True, timeout=60)
    assert unreachable.returncode == 1 and "cannot reach the node" in unreachable.stderr
