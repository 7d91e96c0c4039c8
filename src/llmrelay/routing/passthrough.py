"""Which upstream serves a model on the seed's pass-through endpoint.

The rules follow the model name's vendor prefix, and fall back to LLM_CHAT_URL, so a model that merely
looks like a vendor's (Ollama's `gpt-oss`) still reaches Ollama when that vendor has no key.
"""

from llmrelay.providers.upstream import Upstream
from llmrelay.routing.models import ModelCatalog
from llmrelay.routing.names import ANTHROPIC_PREFIXES, OLLAMA_PREFIX, OPENAI_PREFIXES, no_upstream


class PassthroughRoutes:
    def __init__(self, catalog: ModelCatalog):
        self.ollama = catalog.ollama
        self.openai = catalog.openai
        self.anthropic = catalog.anthropic
        self.cloudflare = catalog.cloudflare
        self.catalog = catalog

    def is_local(self, model: str) -> bool:
        """Whether the embedded model answers `model` (it speaks Ollama's format on this endpoint)."""
        route = self.catalog.embedded_route(model)
        return route is not None
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
        if self.ollama is None:
            raise no_upstream(model)
        return self.ollama
