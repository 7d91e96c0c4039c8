"""Fault injection: upstreams that refuse, fail, rate-limit, send garbage, cut or stall their answers.

Each case ends with the expected answer or a clear error in the client's API shape, never a hang, and leaves
no connection behind.
"""

import json
import os
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.support.node import Node, free_port

USER = [{"role": "user", "content": "why is the sky blue?"}]


@pytest.fixture(scope="module")
def dead_url():
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def node(ollama, openai_upstream, anthropic_upstream, dead_url, tmp_path_factory):
    directory = tmp_path_factory.mktemp("faults")
    openai_base, anthropic_base = openai_upstream.url + "/v1", anthropic_upstream.url

    def single(name, provider, base, model, extra=""):
        key = {"openai": "\n        api_key_env: FAKE_OPENAI_KEY",
               "anthropic": "\n        api_key_env: FAKE_ANTHROPIC_KEY"}.get(provider, "")
        return f"""  - name: {name}
    deployments:
      - provider: {provider}
        base_url: {base}
        model: {model}{key}{extra}
"""
    config = "models:\n" + f"""  - name: two-hosts
    deployments:
      - {{provider: ollama, base_url: "{dead_url}", model: llama3}}
      - {{provider: ollama, base_url: "{ollama.url}", model: llama3}}
""" + single("flaky", "ollama", ollama.url, "x-fail-once") \
        + single("limited", "openai", openai_base, "gpt-rate-limited-once") \
        + single("broken", "ollama", ollama.url, "always-500") + "    fallbacks: [good]\n" \
        + single("good", "anthropic", anthropic_base, "claude-x") \
        + single("small", "ollama", ollama.url, "context-too-long") + "    context_window_fallbacks: [good]\n" \
        + single("garbage", "ollama", ollama.url, "malformed") \
        + single("cut", "ollama", ollama.url, "truncated") \
        + single("stall", "ollama", ollama.url, "hang", "\n        idle_timeout: 0.5") \
        + single("dead", "ollama", dead_url, "llama3-dead") \
        + single("too-long", "ollama", ollama.url, "hang", "\n        idle_timeout: 30\n        total_timeout: 1") \
        + f"""  - name: slow-then-fast
    deployments:
      - {{provider: ollama, base_url: "{ollama.url}", model: x-slow, first_byte_timeout: 0.5}}
      - {{provider: openai, base_url: "{openai_base}", model: gpt-4o, api_key_env: FAKE_OPENAI_KEY}}
"""
    (directory / "llmrelay.yaml").write_text(config)
    env = {"FAKE_OPENAI_KEY": OPENAI_KEY, "FAKE_ANTHROPIC_KEY": ANTHROPIC_KEY, "LLMRELAY_COOLDOWN_FAILURES": "2",
           "LLMRELAY_COOLDOWN_SECONDS": "3", "LLMRELAY_RETRY_BACKOFF": "0.01", "LLMRELAY_EMBEDDED": "false"}
    with Node(env, cwd=directory) as running:
        yield running


def chat(node, model, stream=False, timeout=15):
    return httpx.post(node.url + "/v1/chat/completions", timeout=timeout,
                      json={"model": model, "messages": USER, "stream": stream})


def deployment_states(node) -> dict:
    return {(d["url"], d["model"]): d for d in httpx.get(node.url + "/ready").json()["deployments"]}


def open_sockets(pid: int) -> int:
    return sum(1 for fd in Path(f"/proc/{pid}/fd").iterdir() if os.readlink(fd).startswith("socket:"))


def test_a_dead_deployment_is_retried_around_and_cooled_down(node, ollama, dead_url):
    # Least-busy picks at random between idle deployments: 30 requests make two picks of the dead one certain
    # (a chance of 31 in 2^30 otherwise).
    for _ in range(30):
        response = chat(node, "two-hosts")
        assert response.status_code == 200, response.text
    states = deployment_states(node)
    dead = states[(f"{dead_url}/api/chat", "llama3")]
    assert dead["state"] == "cooling_down" and dead["cooldown_seconds_left"] > 0
    assert sum(r.path == "/api/chat" for r in ollama.requests) == 30, "every request reached the good host once"


def test_a_500_then_success_is_retried(node, ollama):
    response = chat(node, "flaky")
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"]
    assert [json.loads(r.body)["model"] for r in ollama.requests] == ["x-fail-once", "x-fail-once"]


def test_429_with_retry_after_is_honoured_on_the_same_api_path(node, openai_upstream):
    started = time.monotonic()
    response = chat(node, "limited")
    assert response.status_code == 200, response.text
    assert time.monotonic() - started >= 0.9, "waited for Retry-After: 1"
    assert len(openai_upstream.requests) == 2


def test_fallback_model_answers_when_every_deployment_failed(node, ollama, anthropic_upstream):
    response = chat(node, "broken")
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"].startswith("The sky is blue")
    assert response.json()["model"] == "broken", "the client sees the model it asked for"
    assert len(ollama.requests) >= 1 and len(anthropic_upstream.requests) == 1


def test_context_window_error_falls_back_to_the_larger_model_without_retrying(node, ollama, anthropic_upstream):
    response = chat(node, "small")
    assert response.status_code == 200, response.text
    assert len(ollama.requests) == 1, "a too-long prompt is not retried on the same model"
    assert len(anthropic_upstream.requests) == 1


def test_malformed_json_from_the_upstream_is_a_clear_502(node):
    response = chat(node, "garbage")
    assert response.status_code == 502
    assert "not JSON" in response.json()["error"]["message"]


def test_truncated_stream_ends_with_an_error_event(node, ollama):
    with httpx.stream("POST", node.url + "/v1/chat/completions", timeout=10,
                      json={"model": "cut", "messages": USER, "stream": True}) as response:
        body = response.read().decode()
    events = [line for line in body.split("\n\n") if line.startswith("data: ")]
    assert '"content":"The"' in events[1]
    assert json.loads(events[-1][6:])["error"]["code"] == "upstream_unavailable"
    assert sum(r.path == "/api/chat" for r in ollama.requests) == 1, "never retried once bytes went out"


def test_a_stalled_stream_is_ended_by_the_idle_timeout(node):
    started = time.monotonic()
    with httpx.stream("POST", node.url + "/v1/chat/completions", timeout=10,
                      json={"model": "stall", "messages": USER, "stream": True}) as response:
        body = response.read().decode()
    assert time.monotonic() - started < 3
    error = json.loads([line for line in body.split("\n\n") if line.startswith("data: {")][-1][6:])["error"]
    assert error["code"] == "upstream_timeout" and "stalled" in error["message"]


def test_refused_then_cooling_down_with_retry_after(node):
    first = chat(node, "dead")
    assert first.status_code == 502 and "connection refused" in first.json()["error"]["message"]
    chat(node, "dead")
    cooled = chat(node, "dead")
    assert cooled.status_code == 503 and "cooling down" in cooled.json()["error"]["message"]
    assert cooled.json()["error"]["type"] == "upstreams_cooling_down"
    assert int(cooled.headers["retry-after"]) >= 1


def test_keep_alive_connections_closed_by_the_upstream_are_survived(node, ollama):
    """The fake closes idle keep-alive connections when it is restarted; the node's pool must cope."""
    for _ in range(3):
        assert chat(node, "two-hosts").status_code == 200
    ollama.drop_connections()
    for _ in range(3):
        assert chat(node, "two-hosts").status_code == 200


def test_no_connections_leak_after_faults(node):
    for model in ("flaky", "garbage", "cut", "stall", "dead", "broken"):
        chat(node, model, stream=model in ("cut", "stall"))
    time.sleep(0.5)
    baseline = open_sockets(node.process.pid)
    for _ in range(3):
        for model in ("flaky", "garbage", "cut", "stall", "dead", "broken", "small"):
            with httpx.stream("POST", node.url + "/v1/chat/completions", timeout=10,
                              json={"model": model, "messages": USER, "stream": model in ("cut", "stall")}) as r:
                r.read()
    time.sleep(0.5)
    assert open_sockets(node.process.pid) <= baseline + 2


def test_a_first_byte_timeout_is_retried_on_another_deployment(node, ollama, openai_upstream):
    ollama.slow_seconds = 3
    started = time.monotonic()
    answers = [chat(node, "slow-then-fast") for _ in range(2)]
    assert all(answer.status_code == 200 for answer in answers), answers[0].text
    assert time.monotonic() - started < 4
    assert sum(r.path == "/v1/chat/completions" for r in openai_upstream.requests) == 2


def test_the_total_timeout_ends_a_long_answer(node):
    started = time.monotonic()
    with httpx.stream("POST", node.url + "/v1/chat/completions", timeout=10,
                      json={"model": "too-long", "messages": USER, "stream": True}) as response:
        body = response.read().decode()
    assert 0.9 < time.monotonic() - started < 3
    assert '"code":"upstream_timeout"' in body and "took too long" in body
