"""Which upstream serves a model on the seed's pass-through endpoint.

The rules follow the model name's vendor prefix, and fall back to LLM_CHAT_URL, so a model that merely
looks like a vendor's (Ollama's `gpt-oss`) still reaches Ollama when that vendor has no key.
"""

from llmrelay.core.errors import NoUpstream
from llmrelay.providers.anthropic import anthropic_upstream
from llmrelay.providers.ollama import ollama_upstream
from llmrelay.providers.openai import openai_upstream
from llmrelay.providers.upstream import Upstream
from llmrelay.settings import Settings

OPENAI_PREFIXES = ("gpt-", "o1", "o3", "o4", "chatgpt-")
ANTHROPIC_PREFIXES = ("claude-",)
OLLAMA_PREFIX = "ollama/"


class PassthroughRoutes:
    def __init__(self, settings: Settings):
        self.ollama = ollama_upstream(settings.llm_chat_url) if settings.llm_chat_url else None
        self.openai = (openai_upstream(settings.openai_api_key.get_secret_value(), settings.openai_base_url)
                       if settings.openai_api_key else None)
        self.anthropic = (
            anthropic_upstream(settings.anthropic_api_key.get_secret_value(), settings.anthropic_base_url,
                               settings.anthropic_version)
            if settings.anthropic_api_key else None)

    @property
    def upstreams(self) -> list[Upstream]:
        return [u for u in (self.ollama, self.openai, self.anthropic) if u is not None]

    def route(self, model: str) -> tuple[Upstream, bool]:
        """The upstream for `model`, and whether the `ollama/` prefix must be removed from the body."""
        if model.startswith(OLLAMA_PREFIX):
            return self._ollama(model), True
        if self.openai is not None and model.startswith(OPENAI_PREFIXES):
            return self.openai, False
        if self.anthropic is not None and model.startswith(ANTHROPIC_PREFIXES):
            return self.anthropic, False
        return self._ollama(model), False

    def _ollama(self, model: str) -> Upstream:
        if self.ollama is not None:
            return self.ollama
        hint = "set LLM_CHAT_URL to your Ollama server, for example http://localhost:11434"
        if model.startswith(OPENAI_PREFIXES):
            hint = "set OPENAI_API_KEY for OpenAI models, or " + hint
        elif model.startswith(ANTHROPIC_PREFIXES):
            hint = "set ANTHROPIC_API_KEY for Claude models, or " + hint
        raise NoUpstream(f"no upstream is configured for model '{model}': {hint}")
