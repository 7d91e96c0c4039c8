"""No secret — provider keys, the master key, user keys, a database password — in any log line, error
body, header, metric or admin answer, whatever the node is asked."""

import os

import httpx

from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.support.admin import MASTER, QUESTION, create_key
from tests.support.node import free_port

DATABASE_PASSWORD = "pg-password-never-shown"
WRONG_KEY = "llr-somebody-elses-key-0123456789"


def test_no_secret_anywhere_the_node_writes(start_node, node_env, postgres_server):
    database = postgres_server.create_database(f"secrets_{os.getpid()}_{free_port()}")
    database = database.replace("postgres@", f"postgres:{DATABASE_PASSWORD}@")  # trust auth ignores it
    node = start_node({**node_env, "LLMRELAY_MASTER_KEY": MASTER, "LLMRELAY_DATABASE_URL": database,
                       "LLMRELAY_RETRIES": "0"})
    user = create_key(node, rpm=5, models=["llama3", "gpt-4o-mini", "claude-3-5-haiku-latest", "llama3-always-500"])
    key = user["key"]
    seen: list[str] = []

    def call(method, path, token=key, headers=None, **kwargs):
        headers = headers or ({"authorization": f"Bearer {token}"} if token else {})
        response = httpx.request(method, node.url + path, headers=headers, **kwargs)
        seen.append(f"{response.status_code} {response.headers} {response.text}")
        return response

    chat = {"messages": QUESTION, "max_tokens": 10}
    assert call("POST", "/v1/chat/completions", json={"model": "gpt-4o-mini", **chat}).status_code == 200
    assert call("POST", "/v1/messages", json={"model": "claude-3-5-haiku-latest", **chat}).status_code == 200
    assert call("POST", "/api/chat", json={"model": "llama3", **chat}).status_code == 200
    assert call("POST", "/api/chat", json={"model": "llama3-always-500", **chat}).status_code >= 500
    assert call("POST", "/v1/chat/completions", json={"model": "gpt-4o", **chat}).status_code == 403
    assert call("POST", "/v1/chat/completions", token=WRONG_KEY, json={"model": "llama3", **chat}).status_code == 401
    assert call("POST", "/v1/messages", token=None, json={"model": "llama3", **chat},
                headers={"x-api-key": WRONG_KEY}).status_code == 401
    assert call("POST", "/api/chat", json={"model": "llama3", **chat}).status_code == 200
    assert call("POST", "/api/chat", json={"model": "llama3", **chat}).status_code == 429
    for path in ("/admin/keys", "/admin/usage?by=key", "/admin/usage/records", "/admin/deployments", "/metrics"):
        assert call("GET", path, token=MASTER).status_code == 200
    assert call("GET", "/admin/keys", token=key).status_code == 401
    assert call("GET", "/ready", token=None).status_code == 200
    assert node.stop() == 0

    everything = "\n".join(seen) + node.logs()
    assert "key_" in everything and "llama3" in everything  # the capture holds what it should
    for secret in (MASTER, key, key[4:], WRONG_KEY, OPENAI_KEY, ANTHROPIC_KEY, DATABASE_PASSWORD):
        assert secret not in everything, f"a secret leaked: {secret[:6]}..."
    rows = postgres_server.query(database.rsplit("/", 1)[1], "SELECT COUNT(*) FROM usage")
    assert rows[0][0] >= 8
