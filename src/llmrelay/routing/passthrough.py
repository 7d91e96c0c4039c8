"""Which upstream serves a model on the seed's pass-through endpoint.

The rules follow the model name's vendor prefix, and fall back to LLM_CHAT_URL, so a model that merely
looks like a vendor's (Ollama's `gpt-oss`) still reaches Ollama when that vendor has no key.
"""

from llmrelay.providers.upstream import Upstream
from llmrelay.routing.models import (
    Deployment,
    ModelCatalog,
    Route,
    check_length,
    remember,
)
from llmrelay.routing.names import (
    ANTHROPIC_PREFIXES,
    OLLAMA_PREFIX,
    OPENAI_PREFIXES,
    no_upstream,
)


class PassthroughRoutes:
    def __init__(self, catalog: ModelCatalog):
        self.ollama = catalog.ollama
        self.openai = catalog.openai
        self.anthropic = catalog.anthropic
        self.cloudflare = catalog.cloudflare
        self.catalog = catalog
        self._routes: dict[str, tuple[Route, bool]] = {}  # by model name

    def is_local(self, model: str) -> bool:
        """Whether the embedded model answers `model` (it speaks Ollama's format on this endpoint)."""
        route = self.catalog.embedded_route(model)
        return route is not None

    def route(self, model: str) -> tuple[Route, bool]:
        """The route for `model` (one upstream; the body names the model), and whether the `ollama/` prefix
        must be removed from the body."""
        known = self._routes.get(model)
        return known if known is not None else remember(self._routes, model, self._route(model))

    def _route(self, model: str) -> tuple[Route, bool]:
        check_length(model)
        if model.startswith(OLLAMA_PREFIX):
            upstream, strip = self._ollama(model), True
        elif self.openai is not None and model.startswith(OPENAI_PREFIXES):
            upstream, strip = self.openai, False
        elif self.anthropic is not None and model.startswith(ANTHROPIC_PREFIXES):
            upstream, strip = self.anthropic, False
        else:
            upstream, strip = self._ollama(model), False
        # The key the translated surfaces use for the same upstream and model: health and load are shared.
        deployment = Deployment(upstream.name, model.removeprefix(OLLAMA_PREFIX) if strip else model, upstream)
        return Route(model, (deployment,), False), strip

    def _ollama(self, model: str) -> Upstream:
        if self.ollama is None:
            raise no_upstream(model)
        return self.ollama
