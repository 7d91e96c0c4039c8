"""Settings from the environment, `.env` and `llmrelay.yaml`; invalid settings stop the start."""

import json
import os
import subprocess
import sys

import httpx
import pytest

from llmrelay.settings import SettingsError, load_settings
from tests.support.node import free_port

BODY = json.dumps({"model": "llama3", "messages": [], "stream": False}).encode()


def test_defaults_follow_the_seed(clean_env):
    settings = load_settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.max_body_bytes == 10 * 1024 * 1024
    assert (settings.connect_timeout, settings.first_byte_timeout) == (5.0, 300.0)
    assert settings.llm_chat_url is None


@pytest.mark.parametrize("value, expected", [
    ("http://localhost:11434", "http://localhost:11434/api/chat"),
    ("http://localhost:11434/", "http://localhost:11434/api/chat"),
    ("http://gpu-box:11434/api/chat", "http://gpu-box:11434/api/chat"),
    ("https://llm.example.com/custom/chat", "https://llm.example.com/custom/chat"),
])
def test_bare_llm_chat_url_means_ollama_chat(clean_env, monkeypatch, value, expected):
    monkeypatch.setenv("LLM_CHAT_URL", value)
    assert load_settings().llm_chat_url == expected


def test_claude_api_key_is_accepted_as_the_anthropic_key(clean_env, monkeypatch):
    monkeypatch.setenv("CLAUDE_API_KEY", "sk-ant-old-name")
    assert load_settings().anthropic_api_key.get_secret_value() == "sk-ant-old-name"


def test_environment_wins_over_dotenv_which_wins_over_yaml(clean_env, monkeypatch):
    (clean_env / "llmrelay.yaml").write_text("llm_chat_url: http://from-yaml:1\nport: 9001\nconnect_timeout: 7\n")
    (clean_env / ".env").write_text("LLM_CHAT_URL=http://from-dotenv:2\nLLMRELAY_PORT=9002\nUNRELATED=1\n")
    monkeypatch.setenv("LLM_CHAT_URL", "http://from-env:3")
    settings = load_settings()
    assert settings.llm_chat_url == "http://from-env:3/api/chat"
    assert settings.port == 9002
    assert settings.connect_timeout == 7


@pytest.mark.parametrize("variable, value", [
    ("LLM_CHAT_URL", "localhost:11434"),
    ("LLMRELAY_PORT", "eighty"),
    ("LLMRELAY_PORT", "70000"),
    ("LLMRELAY_MAX_BODY_BYTES", "-1"),
    ("LLMRELAY_CONNECT_TIMEOUT", "0"),
    ("LLMRELAY_LOG_FORMAT", "xml"),
    ("OPENAI_BASE_URL", "api.openai.com"),
])
def test_invalid_settings_name_the_variable(clean_env, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_a_missing_config_file_is_an_error(clean_env, monkeypatch):
    monkeypatch.setenv("LLMRELAY_CONFIG", str(clean_env / "nope.yaml"))
    with pytest.raises(SettingsError, match="LLMRELAY_CONFIG"):
        load_settings()


def test_an_invalid_setting_stops_the_start_with_the_variable_named(clean_env):
    env = {**os.environ, "LLM_CHAT_URL": "not a url", "OPENAI_API_KEY": "sk-secret-never-printed"}
    result = subprocess.run([sys.executable, "-m", "llmrelay", "serve", "--port", str(free_port())],
                            env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "LLM_CHAT_URL" in result.stderr
    assert "sk-secret-never-printed" not in result.stderr + result.stdout


def test_node_reads_dotenv_in_its_working_directory(start_node, ollama, tmp_path):
    (tmp_path / ".env").write_text(f"LLM_CHAT_URL={ollama.url}\n")  # a bare base URL, as users write it
    node = start_node({}, cwd=tmp_path)
    assert httpx.post(node.url + "/api/v1/chat", content=BODY).status_code == 200
    assert ollama.last().path == "/api/chat"


def test_environment_wins_over_dotenv_in_the_node(start_node, ollama, tmp_path):
    (tmp_path / ".env").write_text(f"LLM_CHAT_URL=http://127.0.0.1:{free_port()}\n")
    node = start_node({"LLM_CHAT_URL": ollama.url}, cwd=tmp_path)
    assert httpx.post(node.url + "/api/v1/chat", content=BODY).status_code == 200


def test_config_file_option(start_node, ollama, tmp_path):
    config = tmp_path / "elsewhere.yaml"
    config.write_text(f"llm_chat_url: {ollama.url}\n")
    node = start_node({}, args=["--config", str(config)])
    assert httpx.post(node.url + "/api/v1/chat", content=BODY).status_code == 200
