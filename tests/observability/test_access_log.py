"""One access-log line per request, as text or JSON; no secret ever reaches the log."""

import json

import httpx

from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.support.node import free_port


def chat(node, model, stream=False, **kwargs):
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream})
    return httpx.post(node.url + "/api/v1/chat", content=body, **kwargs)


def test_text_line_has_every_field(node):
    response = chat(node, "llama3", headers={"x-request-id": "log-text-1"})
    line = next(line for line in node.wait_for_log("request_id=log-text-1").splitlines()
                if "request_id=log-text-1" in line)
    assert "POST /api/v1/chat" in line
    assert "model=llama3" in line and "upstream=ollama" in line and "status=200" in line
    assert f"bytes={len(response.content)}" in line
    assert "duration_ms=" in line


def test_json_lines_with_log_format_json(start_node, ollama):
    node = start_node({"LLM_CHAT_URL": ollama.url}, args=["--log-format", "json"])
    response = chat(node, "gpt-x", headers={"x-request-id": "log-json-1"})
    chat(node, "llama3", headers={"x-request-id": "log-json-2"}, stream=None).close()
    node.wait_for_log("log-json-1")
    lines = [json.loads(line) for line in node.logs().splitlines() if line.startswith("{")]
    assert lines, "every log line is JSON"
    assert all("ts" in line and "level" in line for line in lines)
    (entry,) = [line for line in lines if line.get("request_id") == "log-json-1"]
    assert entry["method"] == "POST" and entry["path"] == "/api/v1/chat"
    assert entry["model"] == "gpt-x" and entry["upstream"] == "ollama" and entry["status"] == 200
    assert entry["bytes"] == len(response.content) and entry["duration_ms"] > 0
    non_json = [line for line in node.logs().splitlines() if line and not line.startswith("{")]
    assert not non_json


def test_error_requests_are_logged_with_their_error_type(node):
    httpx.post(node.url + "/api/v1/chat", content=b"{", headers={"x-request-id": "log-bad-1"})
    line = next(line for line in node.wait_for_log("request_id=log-bad-1").splitlines() if "log-bad-1" in line)
    assert "status=400" in line and "error=invalid_request_error" in line


def test_client_chosen_strings_cannot_forge_log_lines(node):
    chat(node, "llama3\nFAKE status=200", headers={"x-request-id": "log-forge-1"})
    logs = node.wait_for_log("log-forge-1")
    assert not any(line.startswith("FAKE") for line in logs.splitlines())


def test_provider_keys_never_appear_in_logs(start_node, node_env, openai_upstream):
    url = node_env["LLM_CHAT_URL"].replace("http://", "http://user:pa55word@")
    node = start_node({**node_env, "LLM_CHAT_URL": url})
    chat(node, "gpt-4o")
    chat(node, "gpt-die-midway", stream=True)
    chat(node, "claude-sonnet-4-5")
    chat(node, "llama3")
    dead = start_node({"LLM_CHAT_URL": f"http://user:pa55word@127.0.0.1:{free_port()}",
                       "OPENAI_API_KEY": OPENAI_KEY})
    refused = chat(dead, "llama3")
    assert refused.status_code == 502 and "pa55word" not in refused.text
    for running in (node, dead):
        logs = running.wait_for_log("llmrelay.access")
        for secret in (OPENAI_KEY, ANTHROPIC_KEY, "pa55word"):
            assert secret not in logs


def test_a_client_request_id_with_spaces_is_quoted_in_the_text_line(node):
    chat(node, "llama3", headers={"x-request-id": "forge-id status=500"})
    logs = node.wait_for_log("forge-id")
    (line,) = [line for line in logs.splitlines() if "forge-id" in line]
    assert line.endswith('request_id="forge-id status=500"') and "status=200" in line, line
