"""OpenAI and OpenAI-compatible servers: `/chat/completions` under a base URL that includes `/v1`,
as the official SDK's `base_url` does."""

from llmrelay.providers.upstream import Upstream


def openai_upstream(api_key: str, base_url: str) -> Upstream:
    return Upstream(
        name="openai",
        chat_url=base_url + "/chat/completions",
        probe_url=base_url + "/models",
        setting="OPENAI_API_KEY",
        auth_headers=(("Authorization", f"Bearer {api_key}"),),
    )
