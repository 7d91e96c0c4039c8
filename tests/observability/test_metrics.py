"""Prometheus metrics at /metrics: requests, tokens and latencies per surface and model, retries, and who may
read them."""

import time
from uuid import uuid4

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.brain import PROMPT_TOKENS
from tests.support.admin import MASTER, QUESTION, create_key
from tests.usage.clients import (
    anthropic_whole,
    label,
    openai_failing,
    openai_streamed,
    openai_whole,
    passthrough_whole,
)


def scrape(node, headers=None) -> dict[tuple, float]:
    """Every sample, as (sample name, sorted label pairs) -> value."""
    response = httpx.get(node.url + "/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def series(samples: dict, name: str, *labels: str) -> dict[tuple, float]:
    """The samples named `name`, keyed by the values of `labels` (a single value when one label is asked)."""
    found = {}
    for (sample, pairs), value in samples.items():
        if sample == name:
            values = dict(pairs)
            key = tuple(values.get(label_name) for label_name in labels)
            found[key[0] if len(key) == 1 else key] = value
    return found


def value(samples: dict, name: str) -> float | None:
    """The value of an unlabelled sample; None when absent."""
    return samples.get((name, ()))


def scrape_when(node, ready, headers=None, timeout: float = 5) -> dict:
    """The metrics once `ready(samples)` holds: per-request metrics are updated in the background."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(node, headers)
        if ready(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def requests_counted(samples: dict) -> float:
    return sum(series(samples, "llmrelay_requests_total", "surface", "model", "status").values())


def test_requests_tokens_and_latencies_by_surface_model_and_status(start_node, node_env, ollama,
                                                                   anthropic_upstream):
    node = start_node({**node_env, "LLMRELAY_RETRIES": "0"})
    before = scrape(node)
    assert series(before, "llmrelay_requests_total", "surface", "model", "status") == {}
    assert value(before, "llmrelay_requests_in_flight") == 0
    llama3 = [openai_whole(node, "unused"), openai_streamed(node, "unused"), passthrough_whole(node, None)]
    claude = anthropic_whole(node, "unused")
    missing = openai_failing(node, "unused", "llama3-missing")
    assert missing["status"] == 404
    made = len(llama3) + 2

    samples = scrape_when(node, lambda s: requests_counted(s) >= made
                          and value(s, "llmrelay_usage_records_written_total") == made)
    assert series(samples, "llmrelay_requests_total", "surface", "model", "status") == {
        ("openai", "llama3", "200"): 2, ("passthrough", "llama3", "200"): 1,
        ("anthropic", "claude-sonnet-4-5", "200"): 1, ("openai", "other", "404"): 1}
    completion = sum(seen["completion_tokens"] for seen in llama3)
    assert series(samples, "llmrelay_tokens_total", "model", "direction") == {
        ("llama3", "in"): 3 * PROMPT_TOKENS, ("llama3", "out"): completion,
        ("claude-sonnet-4-5", "in"): claude["prompt_tokens"], ("claude-sonnet-4-5", "out"): claude["completion_tokens"]}
    assert series(samples, "llmrelay_key_tokens_total", "key", "direction") == {}, "no keys on this node"

    assert series(samples, "llmrelay_request_duration_seconds_count", "surface", "model") == {
        ("openai", "llama3"): 2, ("passthrough", "llama3"): 1, ("anthropic", "claude-sonnet-4-5"): 1,
        ("openai", "other"): 1}
    durations = series(samples, "llmrelay_request_duration_seconds_sum", "surface", "model")
    assert all(0 < seconds < 10 for seconds in durations.values()), durations
    buckets = {le: value for (name, pairs), value in samples.items()
               if name == "llmrelay_request_duration_seconds_bucket"
               and dict(pairs).get("surface") == "openai" and dict(pairs).get("model") == "llama3"
               for le in [dict(pairs)["le"]]}
    assert buckets["+Inf"] == 2 and buckets["10.0"] == 2
    # Time to first token only for answers, not for errors.
    assert series(samples, "llmrelay_time_to_first_token_seconds_count", "surface", "model") == {
        ("openai", "llama3"): 2, ("passthrough", "llama3"): 1, ("anthropic", "claude-sonnet-4-5"): 1}
    assert series(samples, "llmrelay_upstream_duration_seconds_count", "provider", "deployment") == {
        ("ollama", label("ollama", ollama.url)): 3, ("anthropic", label("anthropic", anthropic_upstream.url)): 1}

    assert value(samples, "llmrelay_requests_in_flight") == 0
    assert value(samples, "llmrelay_queue_depth") == 0
    assert value(samples, "llmrelay_usage_records_pending") == 0
    assert value(samples, "llmrelay_retries_total") == 0
    healthy = series(samples, "llmrelay_deployment_healthy", "provider", "deployment")
    assert healthy[("ollama", label("ollama", ollama.url))] == 1


def test_metrics_need_the_master_key_when_the_node_has_one(start_node, node_env):
    node = start_node({**node_env, "LLMRELAY_MASTER_KEY": MASTER})
    key = create_key(node, "metered")
    seen = openai_whole(node, key["key"])

    assert httpx.get(node.url + "/metrics").status_code == 401
    assert httpx.get(node.url + "/metrics", headers={"authorization": f"Bearer {key['key']}"}).status_code == 401
    assert httpx.get(node.url + "/metrics", headers={"authorization": "Bearer not-the-master-key-000"}
                     ).status_code == 401
    master = {"authorization": f"Bearer {MASTER}"}
    samples = scrape_when(node, lambda s: series(s, "llmrelay_key_tokens_total", "key", "direction"), master)
    # Tokens per key carry the key's id, never the key.
    assert series(samples, "llmrelay_key_tokens_total", "key", "direction") == {
        (key["id"], "in"): seen["prompt_tokens"], (key["id"], "out"): seen["completion_tokens"]}
    assert not any(key["key"] in str(pairs) for _, pairs in samples)

    public = start_node({**node_env, "LLMRELAY_MASTER_KEY": MASTER, "LLMRELAY_PUBLIC_METRICS": "true"})
    assert httpx.get(public.url + "/metrics").status_code == 200


def test_retries_total_counts_a_request_tried_again(start_node, node_env, ollama):
    node = start_node({**node_env, "LLMRELAY_RETRIES": "2", "LLMRELAY_RETRY_BACKOFF": "0.01"})
    assert value(scrape(node), "llmrelay_retries_total") == 0
    model = f"llama3-{uuid4().hex[:6]}-fail-once"  # the fake answers 500 once, then 200
    seen = openai_whole(node, "unused", model)
    assert seen["status"] == 200
    assert sum(r.path == "/api/chat" for r in ollama.requests) == 2, "the node asked twice"

    samples = scrape_when(node, lambda s: requests_counted(s) >= 1)
    assert value(samples, "llmrelay_retries_total") == 1
    assert value(samples, "llmrelay_fallbacks_total") == 0
    # One request, counted once, as answered.
    assert series(samples, "llmrelay_requests_total", "surface", "model", "status") == {("openai", model, "200"): 1}
    openai_whole(node, "unused", "llama3")
    samples = scrape_when(node, lambda s: requests_counted(s) >= 2)
    assert value(samples, "llmrelay_retries_total") == 1, "an answer at the first try adds no retry"


def test_model_names_never_answered_count_as_other(start_node, node_env, ollama):
    node = start_node({**node_env, "LLMRELAY_RETRIES": "0"})
    names = [f"made-up-{uuid4().hex[:8]}-missing" for _ in range(3)]
    for name in names:
        assert openai_failing(node, "unused", name)["status"] == 404
    failing = f"llama3-{uuid4().hex[:6]}-always-500"
    assert openai_failing(node, "unused", failing)["status"] >= 500
    httpx.post(node.url + "/api/v1/chat", json={"model": names[0], "messages": QUESTION, "stream": False})
    openai_whole(node, "unused", "llama3")

    samples = scrape_when(node, lambda s: requests_counted(s) >= 6)
    assert series(samples, "llmrelay_requests_total", "surface", "model", "status") == {
        ("openai", "other", "404"): 3, ("openai", "other", "502"): 1, ("passthrough", "other", "404"): 1,
        ("openai", "llama3", "200"): 1}
    labelled = {value for (_, pairs) in samples for _, value in pairs}
    assert not labelled & {*names, failing}, "a client-chosen name that got no answer is no label"
    assert set(series(samples, "llmrelay_request_duration_seconds_count", "surface", "model")) == {
        ("openai", "other"), ("passthrough", "other"), ("openai", "llama3")}


def test_the_process_and_its_garbage_collector_are_shown(start_node, node_env):
    node = start_node(node_env)
    samples = scrape(node)
    assert 10 * 2**20 < value(samples, "process_resident_memory_bytes") < 2**30
    assert value(samples, "process_open_fds") > 0
    assert value(samples, "process_cpu_seconds_total") > 0
    collections = series(samples, "python_gc_collections_total", "generation")
    assert set(collections) == {"0", "1", "2"}
    assert collections["2"] >= 1  # at least the one made when the node was set up
