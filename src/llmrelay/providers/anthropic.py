"""Anthropic's Messages API: `/v1/messages` under a base URL without `/v1`, as the official SDK's
`base_url` is."""

from llmrelay.providers.upstream import Upstream


def anthropic_upstream(api_key: str, base_url: str, version: str) -> Upstream:
    return Upstream(
        name="anthropic",
        chat_url=base_url + "/v1/messages",
        probe_url=base_url + "/v1/models",
        setting="ANTHROPIC_API_KEY",
        auth_headers=(("x-api-key", api_key),),
        default_headers=(("anthropic-version", version),),
    )
