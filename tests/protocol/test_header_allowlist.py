"""Client headers reach an upstream only by the provider's allowlist, never next to the node's credentials
when they would act on the operator's account."""

import json

import httpx

BODY = {"messages": [{"role": "user", "content": "hi"}], "stream": False}


def test_openai_organization_and_project_never_go_with_the_nodes_key(node, openai_upstream):
    response = httpx.post(node.url + "/v1/chat/completions", json={"model": "gpt-4o", **BODY}, headers={
        "openai-organization": "org-attacker", "openai-project": "proj-attacker", "openai-beta": "assistants=v2",
        "x-custom": "dropped", "cookie": "a=b", "authorization": "Bearer client-key"})
    assert response.status_code == 200, response.text
    sent = openai_upstream.last()
    assert "openai-organization" not in sent.names and "openai-project" not in sent.names
    assert "x-custom" not in sent.names and "cookie" not in sent.names
    assert sent.headers["openai-beta"] == "assistants=v2"
    assert sent.headers["Authorization"] == "Bearer sk-test-openai-0123456789"


def test_anthropic_version_and_beta_headers_are_relayed(node, anthropic_upstream):
    body = {"model": "claude-3-5-sonnet", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(node.url + "/v1/messages", json=body, headers={
        "anthropic-version": "2023-06-01", "anthropic-beta": "prompt-caching-2024-07-31",
        "x-api-key": "client-key", "openai-organization": "org-x"})
    assert response.status_code == 200, response.text
    sent = anthropic_upstream.last()
    assert sent.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert sent.headers["x-api-key"] != "client-key"
    assert "openai-organization" not in sent.names


def test_organization_configured_on_the_deployment_is_sent(start_node, openai_upstream, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test-openai-0123456789")
    (tmp_path / "llmrelay.yaml").write_text(json.dumps({"models": [{"name": "team-gpt", "deployments": [{
        "provider": "openai", "model": "gpt-4o", "base_url": openai_upstream.url + "/v1",
        "api_key_env": "TEST_OPENAI_KEY", "headers": {"OpenAI-Organization": "org-operator"}}]}]}))
    node = start_node({"TEST_OPENAI_KEY": "sk-test-openai-0123456789", "LLMRELAY_EMBEDDED": "false"}, cwd=tmp_path)
    response = httpx.post(node.url + "/v1/chat/completions", json={"model": "team-gpt", **BODY},
                          headers={"openai-organization": "org-attacker"})
    assert response.status_code == 200, response.text
    assert openai_upstream.last().headers["openai-organization"] == "org-operator"


def test_the_operators_account_ids_and_upstream_cors_headers_never_reach_the_client(start_node, node_env):
    node = start_node({**node_env, "LLMRELAY_ALLOWED_ORIGINS": "https://app.example.com"})
    for stream in (False, True):
        response = httpx.post(node.url + "/v1/chat/completions", json={"model": "gpt-4o", **BODY, "stream": stream},
                              headers={"origin": "https://app.example.com"})
        assert response.status_code == 200, response.text
        assert response.headers["openai-processing-ms"] == "12"  # the upstream's other headers still come
        for name in ("openai-organization", "openai-project", "strict-transport-security"):
            assert name not in response.headers, name
        # one Access-Control-Allow-Origin, the node's: browsers refuse an answer with two
        assert response.headers.get_list("access-control-allow-origin") == ["https://app.example.com"]
