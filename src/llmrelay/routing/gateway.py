"""Where surfaces meet providers: a neutral chat goes to the provider of the deployment that serves it."""

from collections.abc import AsyncIterator

from llmrelay.core.chat import Chat, ChatEvent, Message, TextPart
from llmrelay.core.errors import RelayError
from llmrelay.providers.anthropic import AnthropicProvider
from llmrelay.providers.base import ChatProvider
from llmrelay.providers.cloudflare import CloudflareProvider
from llmrelay.providers.http_client import UpstreamClient
from llmrelay.providers.ollama import OllamaProvider
from llmrelay.providers.openai import OpenAIProvider
from llmrelay.routing.models import Deployment, ModelCatalog, Route


class Gateway:
    def __init__(self, catalog: ModelCatalog, client: UpstreamClient, prompt: str | None = None):
        self.catalog = catalog
        self.client = client
        self.prompt = prompt
        self.providers: dict[str, ChatProvider] = {
            provider.kind: provider for provider in (OllamaProvider(client), OpenAIProvider(client),
                                                     AnthropicProvider(client), CloudflareProvider(client))}

    def route(self, model: str) -> Route:
        return self.catalog.route(model)

    def deployment(self, model: str) -> Deployment:
        # Several deployments per model are chosen between by the reliability work; for now the first serves.
        return self.route(model).deployments[0]

    async def chat(self, chat: Chat, deployment: Deployment) -> AsyncIterator[ChatEvent]:
        if self.prompt and chat.system is None:
            chat.messages.insert(0, Message("system", [TextPart(self.prompt)]))
        provider = self.providers[deployment.provider]
        return await provider.chat(chat, deployment.upstream, deployment.model, deployment.options)

    async def embed(self, model: str, inputs: list[str]) -> tuple[Deployment, list, int]:
        deployment = self.deployment(model)
        provider = self.providers[deployment.provider]
        vectors, tokens = await provider.embed(deployment.upstream, deployment.model, inputs, deployment.options)
        return deployment, vectors, tokens

    async def ollama_tags(self) -> list[dict]:
        """The models LLM_CHAT_URL's Ollama has; none when it is down or not configured."""
        if self.catalog.ollama is None:
            return []
        try:
            return await self.providers["ollama"].tags(self.catalog.ollama)
        except RelayError:
            return []

    async def model_names(self) -> list[tuple[str, str]]:
        """(name, provider) for every model the node serves: the config file's, then Ollama's own."""
        names = [(name, route.deployments[0].provider) for name, route in self.catalog.configured.items()]
        known = {name for name, _ in names}
        for tag in await self.ollama_tags():
            name = tag.get("model") or tag.get("name")
            if name and name not in known:
                names.append((name, "ollama"))
                known.add(name)
        return names
