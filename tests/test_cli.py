"""`llmrelay serve` and its options."""

import json
import os
from pathlib import Path

import httpx

from tests.support.node import Node, free_port

BODY = json.dumps({"model": "llama3", "messages": [], "stream": False}).encode()


def children_of(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def test_serve_help_lists_the_options():
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "llmrelay", "serve", "--help"], capture_output=True,
                            text=True, env={**os.environ, "COLUMNS": "200"})
    for option in ("--host", "--port", "--config", "--workers", "--log-format"):
        assert option in result.stdout


def test_host_option_binds_that_address(ollama, tmp_path):
    port = free_port()
    node = Node({"LLM_CHAT_URL": ollama.url}, args=["--host", "127.0.0.2"], cwd=tmp_path, port=port)
    node.url = f"http://127.0.0.2:{port}"
    with node:
        assert httpx.get(node.url + "/health").status_code == 200
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            raise AssertionError("the node answered on an address it was not bound to")
        except httpx.ConnectError:
            pass


def test_workers_option_starts_several_worker_processes(start_node, ollama):
    node = start_node({"LLM_CHAT_URL": ollama.url}, args=["--workers", "2"])
    for _ in range(10):
        assert httpx.post(node.url + "/api/v1/chat", content=BODY).status_code == 200
    assert len(children_of(node.process.pid)) >= 2


def test_banner_names_the_upstream_without_credentials(start_node, ollama):
    url = ollama.url.replace("http://", "http://admin:hunter2@")
    node = start_node({"LLM_CHAT_URL": url, "OPENAI_API_KEY": "sk-banner-secret"})
    logs = node.wait_for_log("upstream ollama")
    assert f"{ollama.url}/api/chat" in logs
    assert "hunter2" not in logs and "sk-banner-secret" not in logs


def test_banner_says_how_to_configure_when_nothing_is(start_node):
    node = start_node({"LLMRELAY_EMBEDDED": "false"})
    assert "set LLM_CHAT_URL" in node.wait_for_log("no upstream configured and the embedded model is not")
