"""Cooldowns one client cannot abuse: health is kept per upstream and model, a 500 that blames the request does
not count like a dead host, and a cooldown taken from `Retry-After` is capped by LLMRELAY_COOLDOWN_MAX."""

import time
from uuid import uuid4

import httpx
import pytest

from llmrelay.core.errors import from_upstream_status
from llmrelay.routing.balancer import ENVIRONMENT_HEALTH_KEPT, Balancer
from llmrelay.routing.models import ModelCatalog
from llmrelay.settings import load_settings
from tests.conftest import OPENAI_KEY
from tests.support.admin import QUESTION, eventually

ENV = {"LLMRELAY_EMBEDDED": "false", "LLMRELAY_RETRY_BACKOFF": "0.01", "LLMRELAY_COOLDOWN_FAILURES": "3",
       "LLMRELAY_COOLDOWN_SECONDS": "30"}


def openai_env(openai_upstream, **extra) -> dict:
    return {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": openai_upstream.url + "/v1", **ENV, **extra}


def chat(node, model: str, path: str = "/v1/chat/completions") -> httpx.Response:
    return httpx.post(node.url + path, json={"model": model, "messages": QUESTION, "stream": False}, timeout=10)


def cooling_down(response: httpx.Response) -> bool:
    return response.status_code == 503 and "cooling down" in response.json()["error"]["message"]


def asked(upstream, model: str) -> int:
    return sum(1 for r in upstream.requests if r.path == "/v1/chat/completions" and model.encode() in r.body)


def test_one_model_500s_do_not_cool_down_other_models_on_the_same_upstream(start_node, openai_upstream):
    node = start_node(openai_env(openai_upstream))
    for _ in range(3):
        assert not cooling_down(chat(node, "gpt-x-always-500"))
    assert cooling_down(chat(node, "gpt-x-always-500"))
    # Other models of the same upstream (built from OPENAI_API_KEY, named per request) still answer, on the
    # translated surfaces and on the seed's pass-through endpoint alike.
    assert chat(node, "gpt-4o").status_code == 200
    assert chat(node, "gpt-4o", "/api/v1/chat").status_code == 200
    assert cooling_down(chat(node, "gpt-x-always-500", "/api/v1/chat")), "one health per upstream and model"


def test_a_500_that_blames_the_request_does_not_count_but_a_503_does(start_node, openai_upstream):
    node = start_node(openai_env(openai_upstream))
    for _ in range(5):
        response = chat(node, "gpt-x-no-such-model-500")
        assert response.status_code == 500 and "does not exist" in response.json()["error"]["message"]
    assert asked(openai_upstream, "gpt-x-no-such-model-500") == 15, "never cooled down: every attempt reached it"
    states = {d["model"]: d for d in httpx.get(node.url + "/ready").json()["deployments"]}
    assert states["gpt-x-no-such-model-500"]["state"] == "healthy"
    assert states["gpt-x-no-such-model-500"]["recent_failures"] == 0
    for _ in range(3):
        assert not cooling_down(chat(node, "gpt-x-overloaded-503"))
    assert cooling_down(chat(node, "gpt-x-overloaded-503")), "an overloaded host still cools down"


def test_retry_after_cooldown_is_capped(start_node, openai_upstream):
    node = start_node(openai_env(openai_upstream, LLMRELAY_COOLDOWN_MAX="2"))
    limited = chat(node, "gpt-x-rate-limited-hour")
    assert limited.status_code == 429, limited.text
    refused = chat(node, "gpt-x-rate-limited-hour")
    assert cooling_down(refused)
    assert int(refused.headers["retry-after"]) <= 2
    assert chat(node, "gpt-4o").status_code == 200, "the upstream's other models were never refused"
    assert asked(openai_upstream, "gpt-x-rate-limited-hour") == 1
    time.sleep(2.1)
    assert chat(node, "gpt-x-rate-limited-hour").status_code == 429
    assert asked(openai_upstream, "gpt-x-rate-limited-hour") == 2, "back in rotation after 2 s, not an hour"


def test_a_probe_does_not_end_a_retry_after_cooldown(start_node, openai_upstream):
    node = start_node(openai_env(openai_upstream, LLMRELAY_COOLDOWN_MAX="5", LLMRELAY_PROBE_INTERVAL="0.2"))
    assert chat(node, "gpt-x-rate-limited-hour").status_code == 429
    time.sleep(1.5)  # several probes of the upstream, each answered
    assert sum(r.path == "/v1/models" for r in openai_upstream.requests) >= 1
    assert cooling_down(chat(node, "gpt-x-rate-limited-hour")), "still resting as the upstream asked"
    assert asked(openai_upstream, "gpt-x-rate-limited-hour") == 1


def test_cooldown_max_defaults_to_a_minute(clean_env):
    assert load_settings().cooldown_max == 60


def test_a_cooldown_shared_through_the_cluster_is_per_model(start_node, openai_upstream, redis_server):
    env = openai_env(openai_upstream, LLMRELAY_REDIS_URL=redis_server.url, LLMRELAY_RETRIES="1",
                     LLMRELAY_CLUSTER_SECRET="cluster-secret-for-tests-0123456789",
                     LLMRELAY_CLUSTER_NAME=f"test-{uuid4().hex[:8]}", LLMRELAY_COOLDOWN_FAILURES="2")
    a, b = start_node(env), start_node(env)
    # B knows both models, neither cooling down; A cools one down (each request counts once).
    assert chat(b, "gpt-x-always-500").status_code == 500
    assert chat(b, "gpt-4o").status_code == 200
    for _ in range(2):
        assert not cooling_down(chat(a, "gpt-x-always-500"))
    assert cooling_down(chat(a, "gpt-x-always-500"))

    def cooling_on_b() -> bool:
        return any(d["model"] == "gpt-x-always-500" and d["state"] == "cooling_down"
                   for d in httpx.get(b.url + "/ready").json()["deployments"])
    assert eventually(cooling_on_b, 3), "A's cooldown reached B"
    before = asked(openai_upstream, "gpt-x-always-500")
    assert cooling_down(chat(b, "gpt-x-always-500"))
    assert asked(openai_upstream, "gpt-x-always-500") == before
    assert chat(b, "gpt-4o").status_code == 200, "and only for that model"


# The rule and the bound, called directly.

@pytest.mark.parametrize(("status", "detail", "counts"), [
    (500, "The model `x` does not exist or you do not have access to it.", False),
    (500, "This model's maximum context length is 8192 tokens", False),
    (500, "Invalid value for 'messages[0].role'", False),
    (500, "internal error", True),
    (500, "llama runner process has terminated: signal: killed", True),
    (502, "The model `x` does not exist", True),
    (503, "The server is overloaded or not ready yet.", True),
    (504, "gateway timeout", True),
    (409, "conflict", False),
    (429, "Rate limit reached for gpt-4o in organization org-x on requests per min (RPM): Limit 3", True),
    (429, "Request too large for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, "
          "Requested 50000. The input or output tokens must be reduced in order to run successfully.", False),
])
def test_which_upstream_errors_count_towards_a_cooldown(status, detail, counts):
    error = from_upstream_status("openai", status, detail)
    assert error.retryable and error.request_fault is not counts


def test_health_entries_are_per_model_bounded_and_keep_the_failing_ones(clean_env, monkeypatch):
    monkeypatch.setenv("LLM_CHAT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("LLMRELAY_EMBEDDED", "false")
    settings = load_settings()
    catalog, balancer = ModelCatalog(settings), Balancer(settings)
    failing = balancer.pick(catalog.route("failing"), set())[1]
    for _ in range(settings.cooldown_failures):
        balancer.failure(failing)
    assert failing.cooling(time.monotonic())
    for number in range(3 * ENVIRONMENT_HEALTH_KEPT):
        _, health = balancer.pick(catalog.route(f"model-{number}"), set())
        assert health is not failing
    assert 1 < len(balancer.health) <= ENVIRONMENT_HEALTH_KEPT
    assert balancer.health[catalog.route("failing").deployments[0].key] is failing, "the cooling one was kept"
