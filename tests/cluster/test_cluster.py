"""Three nodes and a real Redis: models served by one node reachable from all, limits and keys held by the
cluster as a whole, and a node that dies or a Redis that goes away handled without losing a request."""

import signal
import subprocess
import sys
import threading
import time
from uuid import uuid4

import httpx
import pytest

from tests.support.admin import ADMIN, MASTER, QUESTION, create_key, eventually
from tests.support.node import free_port
from tests.support.servers import RedisServer

SECRET = "cluster-secret-for-tests-0123456789"
ANSWER = "The sky is blue because of Rayleigh scattering."


@pytest.fixture
def cluster(start_node, ollama, redis_server, tmp_path):
    """Nodes A and B serve the model "shared", node C alone serves "c-only"; none has a catch-all upstream."""
    name = f"test-{uuid4().hex[:8]}"

    def config(model: str):
        path = tmp_path / f"{model}.yaml"
        path.write_text(f"models:\n  - name: {model}\n    deployments:\n      - provider: ollama\n"
                        f"        base_url: {ollama.url}\n        model: llama3\n")
        return str(path)

    def node(model: str, redis_url: str = redis_server.url):
        return start_node({"LLMRELAY_REDIS_URL": redis_url, "LLMRELAY_CLUSTER_SECRET": SECRET,
                           "LLMRELAY_CLUSTER_NAME": name, "LLMRELAY_MASTER_KEY": MASTER,
                           "LLMRELAY_EMBEDDED": "false", "LLMRELAY_CONFIG": config(model), "LLMRELAY_RETRIES": "0"})
    a, b, c = node("shared"), node("shared"), node("c-only")
    assert eventually(lambda: all(_lists(n, "c-only") and _lists(n, "shared") for n in (a, b, c)), 5)
    return a, b, c


def chat(node, key: str, model: str) -> httpx.Response:
    return httpx.post(node.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                      json={"model": model, "messages": QUESTION}, timeout=10)


def _lists(node, model: str) -> bool:
    response = httpx.get(node.url + "/v1/models", headers=ADMIN)
    return response.status_code == 200 and model in [m["id"] for m in response.json()["data"]]


def test_a_model_one_node_serves_is_reachable_from_every_node(cluster, ollama):
    a, b, c = cluster
    key = create_key(a)["key"]
    assert eventually(lambda: _status(b, key) == 200 and _status(c, key) == 200, 2)  # the key spread through Redis
    for node in (a, b, c):
        answered = chat(node, key, "c-only")
        assert answered.status_code == 200 and answered.json()["choices"][0]["message"]["content"] == ANSWER
    assert chat(c, key, "shared").status_code == 200  # and the other way round
    # a client cannot pass itself off as a node
    spoofed = httpx.post(a.url + "/v1/chat/completions", headers={"x-llmrelay-cluster": "guess"},
                         json={"model": "c-only", "messages": QUESTION})
    assert spoofed.status_code == 401
    # the request is recorded once, by the node the client asked, with the tokens of the answer
    def forwarded():
        records = httpx.get(a.url + "/admin/usage/records", headers=ADMIN).json()["data"]
        return [r for r in records if r["model"] == "c-only"]
    assert eventually(forwarded, 3)  # usage rows are written in batches
    forwarded = forwarded()
    assert forwarded[0]["provider"].startswith("node ") and forwarded[0]["completion_tokens"] == 9
    assert not [r for r in httpx.get(c.url + "/admin/usage/records", headers=ADMIN).json()["data"]
                if r["model"] == "c-only" and r["key_id"] is None]
    printed = subprocess.run([sys.executable, "-m", "llmrelay", "cluster", "--url", a.url, "--master-key", MASTER],
                             capture_output=True, text=True, timeout=30)
    assert printed.returncode == 0, printed.stderr
    assert len(printed.stdout.strip().splitlines()) == 4  # a header and three nodes
    assert "c-only" in printed.stdout and "(this)" in printed.stdout


def test_a_forwarded_request_keeps_the_clients_api_headers(cluster):
    a, _, _ = cluster
    key = create_key(a)["key"]
    body = {"model": "c-only", "messages": QUESTION, "logprobs": True}  # a field Ollama cannot take
    headers = {"authorization": f"Bearer {key}"}
    refused = httpx.post(a.url + "/v1/chat/completions", headers=headers, json=body, timeout=10)
    assert refused.status_code == 400 and "logprobs" in refused.json()["error"]["message"]
    dropped = httpx.post(a.url + "/v1/chat/completions", headers={**headers, "x-llmrelay-drop-params": "true"},
                         json=body, timeout=10)
    assert dropped.status_code == 200, dropped.text


def test_a_dead_nodes_models_disappear_and_nothing_vanishes(cluster):
    a, b, c = cluster
    key = create_key(a)["key"]
    assert eventually(lambda: chat(b, key, "shared").status_code == 200, 2)
    outcomes: list[tuple[str, int, str]] = []
    stop = threading.Event()

    def load(node, model):
        while not stop.is_set():
            try:
                response = chat(node, key, model)
                outcomes.append((model, response.status_code, response.text))
            except httpx.HTTPError as exc:
                outcomes.append((model, 0, repr(exc)))

    threads = [threading.Thread(target=load, args=args) for args in ((a, "shared"), (b, "shared"), (a, "c-only"),
                                                                       (b, "c-only"))]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    c.process.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    assert eventually(lambda: not _lists(a, "c-only") and not _lists(b, "c-only"), 5)
    gone_after = time.monotonic() - killed
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join(15)
    assert gone_after <= 3.0 + 1.0  # the heartbeat's TTL, and one beat
    assert all(status != 0 for _, status, _ in outcomes), "a request got no HTTP answer"
    assert all(status == 200 for model, status, _ in outcomes if model == "shared")
    failures = [(status, text) for model, status, text in outcomes if model == "c-only" and status != 200]
    assert failures and all(status in (502, 503, 504) and "error" in text for status, text in failures)
    refused = chat(a, key, "c-only")
    assert refused.status_code == 503 and "c-only" in refused.json()["error"]["message"]


def test_a_rate_limit_holds_for_the_cluster_as_a_whole(cluster):
    a, b, c = cluster
    key = create_key(a, rpm=5)["key"]
    assert eventually(lambda: _status(b, key) == 200 and _status(c, key) == 200, 2)
    statuses = [chat(node, key, "shared").status_code for node in (a, b, c) * 4]
    assert statuses.count(200) == 5 and statuses.count(429) == 7


def test_a_key_revoked_on_one_node_is_refused_on_another_within_a_second(cluster):
    a, b, _ = cluster
    created = create_key(a)
    assert eventually(lambda: _status(b, created["key"]) == 200, 2)
    revoked = httpx.delete(a.url + f"/admin/keys/{created['id']}", headers=ADMIN)
    assert revoked.status_code == 200
    started = time.monotonic()
    assert eventually(lambda: _status(b, created["key"]) == 401, 1.0)
    assert time.monotonic() - started < 1.0


def test_a_node_that_loses_redis_keeps_serving_and_rejoins(start_node, ollama, tmp_path):
    redis_server = RedisServer()
    port = redis_server.port
    config = tmp_path / "llmrelay.yaml"
    config.write_text(f"models:\n  - name: shared\n    deployments:\n      - provider: ollama\n"
                      f"        base_url: {ollama.url}\n        model: llama3\n")
    node = start_node({"LLMRELAY_REDIS_URL": redis_server.url, "LLMRELAY_CLUSTER_SECRET": SECRET,
                       "LLMRELAY_CLUSTER_NAME": f"test-{uuid4().hex[:8]}", "LLMRELAY_MASTER_KEY": MASTER,
                       "LLMRELAY_EMBEDDED": "false", "LLMRELAY_CONFIG": str(config)})
    key = create_key(node, rpm=100)["key"]

    def redis_state():
        return httpx.get(node.url + "/ready", headers=ADMIN).json()["cluster"]["redis"]
    assert eventually(lambda: redis_state() == "connected", 3)
    redis_server.stop()
    try:
        assert eventually(lambda: redis_state() == "unreachable", 3)
        assert [chat(node, key, "shared").status_code for _ in range(3)] == [200, 200, 200]
        assert "Redis is unreachable" in node.logs()
    finally:
        redis_server = RedisServer(port)
    try:
        assert eventually(lambda: redis_state() == "connected", 5)
        assert chat(node, key, "shared").status_code == 200
        assert "joined through Redis" in node.wait_for_log("joined through Redis")
    finally:
        redis_server.stop()


def _status(node, key: str) -> int:
    return httpx.get(node.url + "/v1/models", headers={"authorization": f"Bearer {key}"}).status_code


def test_a_deployment_cooling_down_on_one_node_cools_down_on_all(start_node, redis_server, tmp_path):
    config = tmp_path / "llmrelay.yaml"
    config.write_text("models:\n  - name: flaky\n    deployments:\n      - provider: ollama\n"
                      f"        base_url: http://127.0.0.1:{free_port()}\n")
    env = {"LLMRELAY_REDIS_URL": redis_server.url, "LLMRELAY_CLUSTER_SECRET": SECRET,
           "LLMRELAY_CLUSTER_NAME": f"test-{uuid4().hex[:8]}", "LLMRELAY_EMBEDDED": "false",
           "LLMRELAY_CONFIG": str(config), "LLMRELAY_RETRIES": "0", "LLMRELAY_COOLDOWN_FAILURES": "1"}
    a, b = start_node(env), start_node(env)

    def state(node):
        deployments = httpx.get(node.url + "/admin/deployments").json()["data"]
        return [d["state"] for d in deployments if d["model"] == "flaky"]
    failed = httpx.post(a.url + "/v1/chat/completions", json={"model": "flaky", "messages": QUESTION})
    assert failed.status_code == 502
    assert state(a) == ["cooling_down"]
    assert eventually(lambda: state(b) == ["cooling_down"], 2)  # B never tried it itself
    refused = httpx.post(b.url + "/v1/chat/completions", json={"model": "flaky", "messages": QUESTION})
    assert refused.status_code == 503 and "cooling down" in refused.json()["error"]["message"]


def test_usage_totals_cover_the_whole_cluster(cluster):
    a, b, c = cluster  # each node has a database of its own; the totals are in Redis
    key = create_key(a)
    assert eventually(lambda: _status(b, key["key"]) == 200 and _status(c, key["key"]) == 200, 2)
    for node, times in ((a, 2), (b, 3), (c, 1)):
        for _ in range(times):
            assert chat(node, key["key"], "shared").status_code == 200

    def totals():
        return httpx.get(a.url + "/admin/usage/cluster?since=1d", headers=ADMIN).json()
    assert eventually(lambda: sum(row["requests"] for row in totals()["by_model"]) == 6, 3)
    shared = {row["model"]: row for row in totals()["by_model"]}["shared"]
    assert shared == {"model": "shared", "requests": 6, "errors": 0, "prompt_tokens": 6 * 12,
                      "completion_tokens": 6 * 9}
    assert {row["key"]: row["requests"] for row in totals()["by_key"]} == {key["id"]: 6}
