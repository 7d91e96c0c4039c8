"""`/ready`: anonymous callers of a keyed node learn the status only, and probes are shared."""

import concurrent.futures
import time

import httpx

MASTER = "master-key-0123456789abcdef"


def test_ready_on_a_keyed_node_hides_details_from_anonymous_callers(start_node, node_env, ollama):
    keyed = start_node({**node_env, "LLMRELAY_MASTER_KEY": MASTER})
    anonymous = httpx.get(keyed.url + "/ready")
    assert anonymous.status_code == 200
    assert anonymous.json() == {"status": "ready"}
    for secret in (ollama.url, "127.0.0.1", ".db", "deployments"):
        assert secret not in anonymous.text
    with_key = httpx.get(keyed.url + "/ready", headers={"authorization": f"Bearer {MASTER}"}).json()
    assert with_key["status"] == "ready"
    assert any(report["url"].startswith(ollama.url) for report in with_key["upstreams"])
    assert "usage_records" in with_key


def test_ready_probes_each_upstream_at_most_once_a_second_whatever_the_callers(node, ollama):
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: httpx.get(node.url + "/ready", timeout=10), range(64)))
    elapsed = time.monotonic() - started
    assert all(answer.status_code == 200 for answer in answers)
    probes = [request for request in ollama.requests if request.path == "/api/version"]
    assert 1 <= len(probes) <= elapsed + 1, (len(probes), elapsed)
