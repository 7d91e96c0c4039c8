"""Choosing between deployments: least-busy, weighted, latency; periodic probes."""

import http.server
import threading
import time

import httpx
import pytest

from tests.fakes.ollama import FakeOllama
from tests.support.node import Node, free_port

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def hosts():
    servers = [FakeOllama().start(), FakeOllama().start()]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture(autouse=True)
def _fresh(hosts):
    for host in hosts:
        host.reset()


def node_for(tmp_path, hosts, strategy, models=("llama3", "llama3"), weights=(1, 1), env=None):
    deployments = "".join(f"      - {{provider: ollama, base_url: '{host.url}', model: {model}, weight: {weight}}}\n"
                          for host, model, weight in zip(hosts, models, weights))
    (tmp_path / "llmrelay.yaml").write_text(f"models:\n  - name: m\n    strategy: {strategy}\n    deployments:\n"
                                            + deployments)
    return Node({"LLMRELAY_EMBEDDED": "false", **(env or {})}, cwd=tmp_path)


def ask(node, stream=False):
    return httpx.post(node.url + "/v1/chat/completions", json={"model": "m", "messages": USER, "stream": stream},
                      timeout=10)


def chats(host) -> int:
    return sum(r.path == "/api/chat" for r in host.requests)


def test_least_busy_sends_new_requests_to_the_idle_deployment(tmp_path, hosts):
    with node_for(tmp_path, hosts, "least-busy", models=("hold-last", "hold-last")) as node:
        first = threading.Thread(target=lambda: httpx.post(node.url + "/api/chat", timeout=20,
                                                           json={"model": "m", "messages": USER}))
        first.start()
        deadline = time.monotonic() + 5
        while chats(hosts[0]) + chats(hosts[1]) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        busy = 0 if chats(hosts[0]) else 1
        second = threading.Thread(target=lambda: httpx.post(node.url + "/api/chat", timeout=20,
                                                            json={"model": "m", "messages": USER}))
        second.start()
        time.sleep(0.3)
        assert chats(hosts[1 - busy]) == 1, "the second request went to the idle deployment"
        for host in hosts:
            host.release.set()
        first.join(10)
        second.join(10)


def test_weighted_follows_the_weights(tmp_path, hosts):
    with node_for(tmp_path, hosts, "weighted", weights=(9, 1)) as node:
        for _ in range(100):
            assert ask(node).status_code == 200
    assert chats(hosts[0]) > 3 * chats(hosts[1]) and chats(hosts[1]) > 0


def test_latency_prefers_the_faster_deployment(tmp_path, hosts):
    hosts[1].slow_seconds = 0.2
    with node_for(tmp_path, hosts, "latency", models=("llama3", "x-slow")) as node:
        for _ in range(20):
            assert ask(node).status_code == 200
        report = {d["model"]: d for d in httpx.get(node.url + "/ready").json()["deployments"]}
    assert chats(hosts[0]) >= 18, "after measuring both, the fast one takes the load"
    assert report["x-slow"]["ttfb_ms"] > report["llama3"]["ttfb_ms"]


class _Up(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def test_probes_cool_down_a_dead_deployment_and_bring_it_back(tmp_path, hosts):
    port = free_port()
    (tmp_path / "llmrelay.yaml").write_text(f"""models:
  - name: m
    deployments:
      - {{provider: ollama, base_url: 'http://127.0.0.1:{port}', model: llama3}}
      - {{provider: ollama, base_url: '{hosts[0].url}', model: llama3}}
""")
    env = {"LLMRELAY_EMBEDDED": "false", "LLMRELAY_PROBE_INTERVAL": "0.2", "LLMRELAY_COOLDOWN_FAILURES": "2",
           "LLMRELAY_COOLDOWN_SECONDS": "60"}
    with Node(env, cwd=tmp_path) as node:
        def state():
            return {d["url"]: d["state"] for d in httpx.get(node.url + "/ready").json()["deployments"]}
        dead = f"http://127.0.0.1:{port}/api/chat"
        deadline = time.monotonic() + 5
        while state().get(dead) != "cooling_down" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert state()[dead] == "cooling_down", "probes alone found it dead, without a single request"
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Up)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            deadline = time.monotonic() + 5
            while state()[dead] != "healthy" and time.monotonic() < deadline:
                time.sleep(0.1)
            assert state()[dead] == "healthy", "a probe that answers brings it back before its cooldown ends"
        finally:
            server.shutdown()
