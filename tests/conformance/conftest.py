import pytest

from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.support.node import Node

PROVIDERS = ("ollama", "openai", "anthropic")


@pytest.fixture(scope="session")
def matrix_node(ollama, openai_upstream, anthropic_upstream, cloudflare, tmp_path_factory):
    """A node whose config file serves `via-<provider>` (and `via-<provider>-missing`) from each fake."""
    upstream_model = {"ollama": "llama3", "openai": "gpt-4o", "anthropic": "claude-sonnet-4-5"}
    base = {"ollama": ollama.url, "openai": openai_upstream.url + "/v1", "anthropic": anthropic_upstream.url}
    key = {"ollama": "", "openai": "\n      api_key_env: FAKE_OPENAI_KEY",
           "anthropic": "\n      api_key_env: FAKE_ANTHROPIC_KEY"}
    lines = ["models:"]
    for provider in PROVIDERS:
        for suffix, model in (("", upstream_model[provider]), ("-missing", "missing")):
            lines.append(f"""  - name: via-{provider}{suffix}
    deployments:
    - provider: {provider}
      base_url: {base[provider]}
      model: {model}{key[provider]}""")
    # Cloudflare Workers AI: text only through the node (no images); tools are not in its fake.
    for suffix, model in (("", "@cf/meta/llama-3-8b-instruct"), ("-missing", "missing")):
        lines.append(f"""  - name: via-cloudflare{suffix}
    deployments:
    - provider: cloudflare
      base_url: {cloudflare.url}/ai/run
      model: "{model}"
      api_key_env: FAKE_CF_TOKEN""")
    directory = tmp_path_factory.mktemp("matrix")
    (directory / "llmrelay.yaml").write_text("\n".join(lines) + "\n")
    env = {"FAKE_OPENAI_KEY": OPENAI_KEY, "FAKE_ANTHROPIC_KEY": ANTHROPIC_KEY, "FAKE_CF_TOKEN": cloudflare.token}
    with Node(env, cwd=directory) as node:
        yield node
