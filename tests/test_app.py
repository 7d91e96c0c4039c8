"""/health, /ready and the node's answers for unknown paths and methods."""

import httpx

from tests.support.node import free_port


def test_health_answers_while_the_process_lives(node):
    response = httpx.get(node.url + "/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_ready_reports_each_upstream(node):
    response = httpx.get(node.url + "/ready")
    assert response.status_code == 200
    report = {upstream["name"]: upstream for upstream in response.json()["upstreams"]}
    assert set(report) == {"ollama", "openai", "anthropic"}
    assert all(upstream["ready"] for upstream in report.values())
    assert report["ollama"]["status"] == 200


def test_ready_is_503_when_no_upstream_answers(start_node):
    node = start_node({"LLM_CHAT_URL": f"http://127.0.0.1:{free_port()}"})
    response = httpx.get(node.url + "/ready")
    assert response.status_code == 503
    (upstream,) = response.json()["upstreams"]
    assert upstream["ready"] is False
    assert "connection refused" in upstream["error"]


def test_ready_is_503_when_nothing_is_configured(start_node):
    response = httpx.get(start_node({"LLMRELAY_EMBEDDED": "false"}).url + "/ready")
    assert response.status_code == 503
    assert response.json()["upstreams"] == []
    assert "LLM_CHAT_URL" in response.json()["message"]


def test_ready_is_200_while_one_of_several_upstreams_is_down(start_node, node_env):
    node = start_node({**node_env, "OPENAI_API_KEY": "sk-wrong", "LLM_CHAT_URL": f"http://127.0.0.1:{free_port()}"})
    response = httpx.get(node.url + "/ready")
    assert response.status_code == 200
    report = {upstream["name"]: upstream for upstream in response.json()["upstreams"]}
    assert report["anthropic"]["ready"] is True
    assert report["openai"]["ready"] is False and "OPENAI_API_KEY" in report["openai"]["error"]
    assert report["ollama"]["ready"] is False
    assert "sk-wrong" not in response.text


def test_unknown_path_is_404_json(node):
    response = httpx.get(node.url + "/nope")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


def test_wrong_method_is_405_with_allow(node):
    response = httpx.get(node.url + "/api/v1/chat")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "POST" in response.json()["error"]["message"]
