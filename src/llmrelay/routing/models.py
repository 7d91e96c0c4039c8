"""Which deployments serve a public model name on the translated surfaces.

Models declared in `llmrelay.yaml` come first. Other names follow the environment, like the seed's
endpoint: `ollama/NAME`, vendor prefixes when the vendor has a key, else LLM_CHAT_URL's Ollama.
"""

import os
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from llmrelay.core.errors import BadRequest, NoUpstream
from llmrelay.providers.anthropic import anthropic_upstream
from llmrelay.providers.cloudflare import cloudflare_upstream
from llmrelay.providers.local import embedded_model_path, local_upstream
from llmrelay.providers.model_path import MAX_MODEL_NAME
from llmrelay.providers.ollama import ollama_upstream
from llmrelay.providers.openai import openai_upstream
from llmrelay.providers.upstream import Upstream, capped
from llmrelay.routing.names import (
    ANTHROPIC_PREFIXES,
    EMBEDDED_NAMES,
    OLLAMA_PREFIX,
    OPENAI_PREFIXES,
    no_upstream,
)
from llmrelay.settings import DeploymentConfig, Settings


@dataclass(frozen=True, slots=True, eq=False)
class Deployment:
    provider: str  # "ollama", "openai", "anthropic", "cloudflare" or "local"
    model: str  # the upstream's name for the model
    upstream: Upstream
    options: dict = field(default_factory=dict)
    weight: float = 1.0
    max_in_flight: int | None = None
    configured: bool = False
    # Identifies the deployment across requests (health, load, latency are kept per key): its upstream and
    # model, so one model failing never takes the upstream's other models out of rotation. Routes made from
    # the environment are marked apart from configured deployments, which may limit requests in flight.
    key: str = field(init=False)
    # Names it in metrics, usage records and /ready: provider, host, and the model when configured (never
    # credentials, and never a client-chosen name, which would let clients grow the metrics without bound).
    label: str = field(init=False)

    def __post_init__(self):
        kind = self.provider if self.configured else self.provider + "+env"
        key = f"{kind} {self.upstream.chat_url} {self.model}"
        object.__setattr__(self, "key", key)
        where = self.upstream.display_url
        host = where.rsplit("/", 1)[-1] if self.provider == "local" else urlsplit(where).netloc
        label = f"{self.provider}:{host}" + (f"/{self.model}" if self.configured else "")
        object.__setattr__(self, "label", label)


@dataclass(frozen=True, slots=True)
class Route:
    name: str  # the public name the client asked for
    deployments: tuple[Deployment, ...]
    configured: bool  # declared in the config file (listed by /v1/models)
    strategy: str = "least-busy"
    fallbacks: tuple[str, ...] = ()
    context_window_fallbacks: tuple[str, ...] = ()


ROUTES_KEPT = 1024  # routes of client-chosen model names kept for reuse; forgotten all at once beyond


def remember(cache: dict, key, value):
    """`value`, kept in `cache` under `key`; a full cache is emptied first (names come from clients)."""
    if len(cache) >= ROUTES_KEPT:
        cache.clear()
    cache[key] = value
    return value


def check_length(model: str) -> None:
    """Refuse a name longer than any model's before it is kept anywhere (routes, health, URLs)."""
    if len(model) > MAX_MODEL_NAME:
        raise BadRequest(f"the model name is {len(model)} characters long; model names are at most "
                         f"{MAX_MODEL_NAME}")


class ModelCatalog:
    def __init__(self, settings: Settings):
        self.settings = settings
        # Routes for models the config does not name, by name: building one (a Deployment, its key and label,
        # two URL parses) cost more than the rest of routing a request.
        self._environment_routes: dict[str, Route] = {}
        self.ollama = ollama_upstream(settings.llm_chat_url) if settings.llm_chat_url else None
        self.openai = (openai_upstream(settings.openai_api_key.get_secret_value(), settings.openai_base_url)
                       if settings.openai_api_key else None)
        self.anthropic = (anthropic_upstream(settings.anthropic_api_key.get_secret_value(),
                                             settings.anthropic_base_url, settings.anthropic_version)
                          if settings.anthropic_api_key else None)
        self.cloudflare = (cloudflare_upstream(settings.llm_cf_token.get_secret_value() if settings.llm_cf_token
                                               else None, settings.llm_cf_url) if settings.llm_cf_url else None)
        self.ollama, self.openai, self.anthropic, self.cloudflare = (  # the client caps each one's host by it
            capped(u, settings.max_connections_per_host) for u in (self.ollama, self.openai, self.anthropic,
                                                                   self.cloudflare))
        self.configured = {
            model.name: Route(model.name, tuple(self._deployment(model.name, d) for d in model.deployments), True,
                              model.strategy, tuple(model.fallbacks), tuple(model.context_window_fallbacks))
            for model in settings.models}
        path = settings.embedded_model or embedded_model_path()
        self.embedded = (Deployment("local", "smollm2", local_upstream(str(path)))
                         if settings.embedded and path else None)

    @property
    def nothing_configured(self) -> bool:
        """No Ollama, no provider key, no model in a config file: the embedded model answers everything."""
        return not (self.ollama or self.openai or self.anthropic or self.cloudflare or self.configured)

    def embedded_route(self, model: str) -> Route | None:
        """The embedded model's route when it serves `model`: its own names, or anything on a bare node."""
        if self.embedded is not None and model not in self.configured and (
                model in EMBEDDED_NAMES or self.nothing_configured):
            return Route(model, (self.embedded,), False)
        return None

    @property
    def upstreams(self) -> list[Upstream]:
        """Every distinct upstream, for opening sessions and probing readiness."""
        seen: dict[tuple, Upstream] = {}
        candidates = [self.ollama, self.openai, self.anthropic, self.cloudflare]
        candidates += [d.upstream for route in self.configured.values() for d in route.deployments]
        for upstream in candidates:
            if upstream is not None and upstream.name != "local":
                seen.setdefault((upstream.name, upstream.chat_url), upstream)
        return list(seen.values())

    def route(self, model: str) -> Route:
        route = self.configured.get(model) or self.embedded_route(model)
        if route is not None:
            return route
        route = self._environment_routes.get(model)
        if route is None:
            route = remember(self._environment_routes, model, self._environment_route(model))
        return route

    def _environment_route(self, model: str) -> Route:
        """A model the config file does not name: its upstream follows its name's vendor prefix."""
        check_length(model)
        if model.startswith(OLLAMA_PREFIX):
            return Route(model, (Deployment("ollama", model.removeprefix(OLLAMA_PREFIX), self._ollama(model)),), False)
        if self.openai is not None and model.startswith(OPENAI_PREFIXES):
            return Route(model, (Deployment("openai", model, self.openai),), False)
        if self.anthropic is not None and model.startswith(ANTHROPIC_PREFIXES):
            return Route(model, (Deployment("anthropic", model, self.anthropic),), False)
        return Route(model, (Deployment("ollama", model, self._ollama(model)),), False)

    def _ollama(self, model: str) -> Upstream:
        if self.ollama is None:
            raise no_upstream(model)
        return self.ollama

    def _deployment(self, name: str, config: DeploymentConfig) -> Deployment:
        settings = self.settings
        key = os.environ[config.api_key_env] if config.api_key_env else None
        setting = config.api_key_env or f"llmrelay.yaml model {name}"
        if config.provider == "ollama":
            base = config.base_url or (self.ollama.base_url if self.ollama else "http://localhost:11434")
            upstream = ollama_upstream(base + "/api/chat", setting)
        elif config.provider == "openai":
            if key is None and settings.openai_api_key and not config.base_url:
                key = settings.openai_api_key.get_secret_value()
            upstream = openai_upstream(key, config.base_url or settings.openai_base_url, setting)
        elif config.provider == "anthropic":
            if key is None and settings.anthropic_api_key and not config.base_url:
                key = settings.anthropic_api_key.get_secret_value()
            upstream = anthropic_upstream(key, config.base_url or settings.anthropic_base_url,
                                          settings.anthropic_version, setting)
        elif config.provider == "local":
            path = config.model_path or settings.embedded_model or embedded_model_path()
            if path is None:
                raise NoUpstream(f"model {name}: a local deployment needs model_path (or the embedded model installed)")
            options = {"context_size": config.context_size, "threads": config.threads}
            return Deployment("local", config.model or name, local_upstream(str(path)), options, config.weight,
                              config.max_in_flight, True)
        else:
            if key is None and settings.llm_cf_token:
                key = settings.llm_cf_token.get_secret_value()
            base = config.base_url or settings.llm_cf_url
            if base is None:
                raise NoUpstream(f"model {name}: a cloudflare deployment needs base_url or LLM_CF_URL")
            upstream = cloudflare_upstream(key, base, setting)
        upstream = replace(upstream, default_headers=upstream.default_headers + tuple(config.headers.items()),
                           connect_timeout=config.connect_timeout, first_byte_timeout=config.first_byte_timeout,
                           idle_timeout=config.idle_timeout, total_timeout=config.total_timeout,
                           max_connections=config.max_connections or settings.max_connections_per_host)
        return Deployment(config.provider, config.model or name, upstream, dict(config.options), config.weight,
                          config.max_in_flight, True)
