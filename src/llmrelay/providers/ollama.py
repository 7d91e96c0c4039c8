"""Ollama: the native `/api/chat` endpoint (NDJSON streaming, streaming by default)."""

from llmrelay.providers.upstream import Upstream, origin


def ollama_upstream(chat_url: str) -> Upstream:
    # /api/version is Ollama's cheapest endpoint; any HTTP answer proves the server is up.
    return Upstream(name="ollama", chat_url=chat_url, probe_url=origin(chat_url) + "/api/version",
                    setting="LLM_CHAT_URL")
