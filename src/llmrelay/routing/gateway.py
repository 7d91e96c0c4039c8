"""Where surfaces meet providers: a neutral chat goes to the provider of the deployment that serves it."""

import asyncio
from collections.abc import AsyncIterator

from llmrelay.core.chat import Chat, ChatEvent, Message, TextPart
from llmrelay.core.errors import RelayError
from llmrelay.providers.anthropic import AnthropicProvider
from llmrelay.providers.base import ChatProvider
from llmrelay.providers.cloudflare import CloudflareProvider
from llmrelay.providers.http_client import UpstreamClient
from llmrelay.providers.local import LocalProvider
from llmrelay.providers.ollama import OllamaProvider
from llmrelay.providers.openai import OpenAIProvider
from llmrelay.providers.upstream import Upstream
from llmrelay.routing.balancer import Balancer
from llmrelay.routing.models import Deployment, ModelCatalog, Route
from llmrelay.routing.retry import Retrier
from llmrelay.settings import Settings


class Gateway:
    def __init__(self, catalog: ModelCatalog, client: UpstreamClient, balancer: Balancer, retrier: Retrier,
                 settings: Settings):
        self.catalog = catalog
        self.client = client
        self.prompt = settings.prompt
        self.balancer = balancer
        self.retrier = retrier
        self.local = LocalProvider(settings.local_context_size, settings.local_threads, settings.local_queue)
        self.providers: dict[str, ChatProvider | LocalProvider] = {
            provider.kind: provider for provider in (OllamaProvider(client), OpenAIProvider(client),
                                                     AnthropicProvider(client), CloudflareProvider(client),
                                                     self.local)}

    async def load_embedded(self) -> None:
        """On a node with nothing else to serve, load the embedded model at start so the first request does
        not wait; elsewhere it loads on its first request and costs no memory until then."""
        embedded = self.catalog.embedded
        if embedded is not None and self.catalog.nothing_configured:
            await self.local.runtime(embedded.upstream.chat_url.removeprefix("local:"), embedded.options).load()

    async def probe_forever(self, interval: float, timeout: float) -> None:
        """Probe every HTTP deployment each `interval` seconds: a failing probe counts as a failure (enough of
        them cool it down); an answering one brings a cooled-down deployment back early."""
        while True:
            await asyncio.sleep(interval)
            deployments = [d for route in self.catalog.configured.values() for d in route.deployments]
            deployments += [health.deployment for health in self.balancer.health.values()]  # environment ones
            # One probe per upstream, however many of its models are in use; its answer goes to each of them.
            by_upstream: dict[Upstream, dict[str, Deployment]] = {}
            for deployment in deployments:
                if deployment.provider != "local":
                    by_upstream.setdefault(deployment.upstream, {})[deployment.key] = deployment
            reports = await asyncio.gather(*(self.client.probe(upstream, timeout) for upstream in by_upstream))
            for group, report in zip(by_upstream.values(), reports):
                for deployment in group.values():
                    health = self.balancer.health_of(deployment)
                    if report["ready"]:
                        self.balancer.recovered(health)
                    else:
                        self.balancer.failure(health)

    def local_status(self) -> list[dict]:
        return [runtime.status() for runtime in self.local.runtimes.values()]

    def route(self, model: str) -> Route:
        return self.catalog.route(model)

    def deployment(self, model: str) -> Deployment:
        """One deployment for a request that needs no retries (model details, token counts)."""
        route = self.route(model)
        return self.balancer.pick(route, set())[0]

    async def chat(self, chat: Chat, deployment: Deployment) -> AsyncIterator[ChatEvent]:
        if self.prompt and chat.system is None:
            chat.messages.insert(0, Message("system", [TextPart(self.prompt)]))
        provider = self.providers[deployment.provider]
        return await provider.chat(chat, deployment.upstream, deployment.model, deployment.options)

    async def embed(self, model: str, inputs: list[str], leases: list) -> tuple[Deployment, list, int]:
        async def attempt(lease, final):
            deployment = lease.deployment
            provider = self.providers[deployment.provider]
            vectors, tokens = await provider.embed(deployment.upstream, deployment.model, inputs, deployment.options)
            return deployment, vectors, tokens
        return await self.retrier.run(self.route(model), attempt, leases)

    async def ollama_tags(self) -> list[dict]:
        """The models LLM_CHAT_URL's Ollama has; none when it is down or not configured."""
        if self.catalog.ollama is None:
            return []
        try:
            return await self.providers["ollama"].tags(self.catalog.ollama)
        except RelayError:
            return []

    async def own_model_names(self) -> list[tuple[str, str]]:
        """(name, provider) for every model this node serves itself: the config file's, then Ollama's own."""
        names = [(name, route.deployments[0].provider) for name, route in self.catalog.configured.items()]
        if self.catalog.embedded is not None:
            names.append(("smollm2", "local"))
        known = {name for name, _ in names}
        for tag in await self.ollama_tags():
            name = tag.get("model") or tag.get("name")
            if name and name not in known:
                names.append((name, "ollama"))
                known.add(name)
        return names
