"""API keys: who may use the node, with each official SDK; expiry, revocation, storage, exposure."""

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import httpx
import ollama
import openai
import pytest

from tests.support.admin import MASTER, QUESTION, create_key, eventually
from tests.support.node import Node, free_port

ANSWER = "The sky is blue because of Rayleigh scattering."


def cli(node: Node, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmrelay", *args, "--url", node.url],
                          capture_output=True, text=True, env={**os.environ, "LLMRELAY_MASTER_KEY": MASTER},
                          timeout=30)


@pytest.fixture
def keyed_node(start_node, node_env):
    return start_node({**node_env, "LLMRELAY_MASTER_KEY": MASTER})


def ask_openai(node: Node, key: str | None, model: str = "llama3") -> str:
    client = openai.OpenAI(base_url=node.url + "/v1", api_key=key or "", max_retries=0)
    return client.chat.completions.create(model=model, messages=QUESTION).choices[0].message.content


def ask_anthropic(node: Node, key: str | None, model: str = "claude-3-5-haiku-latest") -> str:
    client = anthropic.Anthropic(base_url=node.url, api_key=key or "", max_retries=0)
    return client.messages.create(model=model, max_tokens=50, messages=QUESTION).content[0].text


def ask_ollama(node: Node, key: str | None, model: str = "llama3") -> str:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return ollama.Client(host=node.url, headers=headers).chat(model=model, messages=QUESTION).message.content


def test_a_key_from_the_cli_works_with_every_sdk(keyed_node, monkeypatch):
    created = cli(keyed_node, "keys", "create", "--name", "alice")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("llr-") and "cannot be shown again" in created.stderr
    assert ask_openai(keyed_node, key) == ANSWER  # Authorization: Bearer
    assert ask_anthropic(keyed_node, key) == ANSWER  # x-api-key
    assert ask_ollama(keyed_node, key) == ANSWER  # headers=...
    monkeypatch.setenv("OLLAMA_API_KEY", key)  # the Ollama client's own way to send a key
    assert ollama.Client(host=keyed_node.url).chat(model="llama3", messages=QUESTION).message.content == ANSWER
    # the pass-through endpoint too
    response = httpx.post(keyed_node.url + "/api/v1/chat", headers={"authorization": f"Bearer {key}"},
                          json={"model": "llama3", "messages": QUESTION, "stream": False})
    assert response.status_code == 200


def test_an_unknown_key_is_401_in_each_sdks_error_class(keyed_node):
    key = "llr-not-a-key-anyone-made"
    with pytest.raises(openai.AuthenticationError) as refused:
        ask_openai(keyed_node, key)
    assert "API key is not valid" in refused.value.message
    with pytest.raises(anthropic.AuthenticationError):
        ask_anthropic(keyed_node, key)
    with pytest.raises(ollama.ResponseError) as refused_ollama:
        ask_ollama(keyed_node, key)
    assert refused_ollama.value.status_code == 401


def test_a_missing_key_is_401_in_each_apis_error_shape(keyed_node):
    body = {"model": "llama3", "messages": QUESTION, "max_tokens": 10}
    openai_error = httpx.post(keyed_node.url + "/v1/chat/completions", json=body)
    assert openai_error.status_code == 401
    assert "requires an API key" in openai_error.json()["error"]["message"]
    anthropic_error = httpx.post(keyed_node.url + "/v1/messages", json=body)
    assert anthropic_error.status_code == 401 and anthropic_error.json()["type"] == "error"
    ollama_error = httpx.post(keyed_node.url + "/api/chat", json=body)
    assert ollama_error.status_code == 401 and "requires an API key" in ollama_error.json()["error"]
    assert httpx.get(keyed_node.url + "/v1/models").status_code == 401
    # liveness and readiness stay open for load balancers
    assert httpx.get(keyed_node.url + "/health").status_code == 200


def test_a_model_the_key_may_not_use_is_403(keyed_node):
    key = create_key(keyed_node, models=["llama3", "ollama/*"])["key"]
    assert ask_openai(keyed_node, key) == ANSWER
    assert ask_openai(keyed_node, key, "ollama/llama3") == ANSWER  # a prefix pattern
    with pytest.raises(openai.PermissionDeniedError) as refused:
        ask_openai(keyed_node, key, "gpt-4o-mini")
    assert "may not use the model 'gpt-4o-mini'" in refused.value.message
    with pytest.raises(anthropic.PermissionDeniedError):
        ask_anthropic(keyed_node, key)
    # A second, differently cased "model" (which Ollama's decoder would obey) is refused, not slipped past.
    smuggled = httpx.post(keyed_node.url + "/api/v1/chat", headers={"Authorization": f"Bearer {key}"},
                          content=b'{"model": "llama3", "MODEL": "gpt-4o-mini", "messages": []}')
    assert smuggled.status_code == 400 and "names its model twice" in smuggled.json()["error"]["message"]


def test_an_expired_key_is_refused(keyed_node):
    key = create_key(keyed_node, expires="1s")["key"]
    assert ask_openai(keyed_node, key) == ANSWER
    time.sleep(1.1)
    with pytest.raises(openai.AuthenticationError) as refused:
        ask_openai(keyed_node, key)
    assert "expired" in refused.value.message


def test_a_revoked_key_is_refused_at_once(keyed_node):
    created = create_key(keyed_node)
    assert ask_openai(keyed_node, created["key"]) == ANSWER
    revoked = cli(keyed_node, "keys", "revoke", created["id"])
    assert revoked.returncode == 0 and created["id"] in revoked.stdout
    with pytest.raises(openai.AuthenticationError) as refused:
        ask_openai(keyed_node, created["key"])
    assert "revoked" in refused.value.message
    listed = cli(keyed_node, "keys", "list")
    assert f"{created['id']}\ttest\t" in listed.stdout and "\trevoked\t" in listed.stdout
    assert cli(keyed_node, "keys", "revoke", "key_nosuchkey").returncode == 1


def test_keys_are_stored_only_as_hashes_and_never_listed(keyed_node):
    created = create_key(keyed_node, rpm=5)
    key = created["key"]
    listed = httpx.get(keyed_node.url + "/admin/keys", headers={"authorization": f"Bearer {MASTER}"}).json()
    assert [k["id"] for k in listed["data"]] == [created["id"]]
    assert key not in str(listed) and listed["data"][0]["hint"].endswith(key[-4:])
    keyed_node.stop()
    stored = b"".join(path.read_bytes() for path in Path(keyed_node.env["LLMRELAY_DATA_DIR"]).glob("llmrelay.db*"))
    assert hashlib.sha256(key.encode()).hexdigest().encode() in stored
    assert key.encode() not in stored and key[4:].encode() not in stored


def test_the_admin_api_needs_the_master_key(keyed_node, start_node, node_env):
    user_key = create_key(keyed_node)["key"]
    for headers in ({}, {"authorization": f"Bearer {user_key}"}, {"authorization": "Bearer wrong"}):
        assert httpx.get(keyed_node.url + "/admin/keys", headers=headers).status_code == 401
        assert httpx.post(keyed_node.url + "/admin/keys", json={"name": "x"}, headers=headers).status_code == 401
    # the master key is a key too
    assert ask_openai(keyed_node, MASTER) == ANSWER
    # without a master key there is no admin API at all
    open_node = start_node(node_env)
    refused = httpx.get(open_node.url + "/admin/keys", headers={"authorization": f"Bearer {MASTER}"})
    assert refused.status_code == 403 and "LLMRELAY_MASTER_KEY" in refused.json()["error"]["message"]


def test_bad_key_requests_get_clear_errors(keyed_node):
    auth = {"authorization": f"Bearer {MASTER}"}
    for body, words in (({}, "name"), ({"name": "x", "rpm": 0}, "rpm"), ({"name": "x", "expires": "soon"}, "expires"),
                        ({"name": "x", "models": "llama3"}, "models"), ({"name": "x", "colour": 1}, "colour")):
        response = httpx.post(keyed_node.url + "/admin/keys", json=body, headers=auth)
        assert response.status_code == 400 and words in response.json()["error"]["message"]
    listed = httpx.get(keyed_node.url + "/admin/keys", headers=auth).json()
    assert listed["data"] == []  # nothing half-made


def test_a_key_made_on_one_node_works_on_another_sharing_the_database(start_node, node_env, postgres_server):
    database = postgres_server.create_database(f"keys_{os.getpid()}_{free_port()}")
    env = {**node_env, "LLMRELAY_MASTER_KEY": MASTER, "LLMRELAY_DATABASE_URL": database}
    first, second = start_node(env), start_node(env)
    created = create_key(first)
    assert eventually(lambda: _status(second, created["key"]) == 200, 3)
    httpx.delete(first.url + f"/admin/keys/{created['id']}", headers={"authorization": f"Bearer {MASTER}"})
    assert eventually(lambda: _status(second, created["key"]) == 401, 3)


def test_binding_beyond_loopback_without_keys_is_refused_unless_allowed(ollama, tmp_path):
    port = free_port()
    refused = subprocess.run([sys.executable, "-m", "llmrelay", "serve", "--host", "0.0.0.0", "--port", str(port)],
                             capture_output=True, text=True, timeout=30,
                             env={**Node().env, "LLM_CHAT_URL": ollama.url}, cwd=tmp_path)
    assert refused.returncode == 2
    assert "without API keys" in refused.stderr and "LLMRELAY_MASTER_KEY" in refused.stderr
    node = Node({"LLM_CHAT_URL": ollama.url}, args=["--host", "0.0.0.0", "--allow-open"], cwd=tmp_path, port=port)
    with node:
        assert "open to anyone" in node.logs()
        assert httpx.post(node.url + "/api/v1/chat", json={"model": "llama3", "messages": QUESTION,
                                                           "stream": False}).status_code == 200
    keyed = Node({"LLM_CHAT_URL": ollama.url, "LLMRELAY_MASTER_KEY": MASTER}, args=["--host", "0.0.0.0"],
                 cwd=tmp_path)
    with keyed:
        assert httpx.get(keyed.url + "/v1/models").status_code == 401


def _status(node: Node, key: str) -> int:
    return httpx.get(node.url + "/v1/models", headers={"authorization": f"Bearer {key}"}).status_code
