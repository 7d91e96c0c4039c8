"""The seed's endpoint, `POST /api/v1/chat`: the body goes to the upstream chosen by its model, byte for
byte, and the upstream's status, headers and bytes come back as they arrive."""

import asyncio
from collections.abc import Awaitable

from llmrelay.access.model_gate import ModelGate
from llmrelay.asgi import Exchange
from llmrelay.core.chat import OFF_LOOP_BYTES
from llmrelay.core.errors import NoUpstream
from llmrelay.core.json_bytes import replace_top_level_string
from llmrelay.providers.cloudflare import model_url
from llmrelay.providers.http_client import UpstreamClient
from llmrelay.relay.forwarding import (
    Answer,
    forward,
    open_upstream,
    relay_and_close,
    stream_error_record,
)
from llmrelay.routing.names import OLLAMA_PREFIX
from llmrelay.routing.passthrough import PassthroughRoutes
from llmrelay.routing.retry import Retrier
from llmrelay.surfaces.decoding import requested_model


class PassthroughSurface:
    def __init__(self, routes: PassthroughRoutes, client: UpstreamClient, retrier: Retrier, gate: ModelGate,
                 max_body_bytes: int, local_chat):
        self.routes = routes
        self.gate = gate
        self.client = client
        self.retrier = retrier
        self.max_body_bytes = max_body_bytes
        self.local_chat = local_chat  # answers an Ollama-format body from the embedded model

    async def cloudflare(self, ex: Exchange) -> None:
        """`POST /api/v1/chat/cf`: the body goes as it is to Cloudflare Workers AI's `LLM_CF_URL/<model>`."""
        body = await ex.read_body(self.max_body_bytes)
        model = requested_model(body) if len(body) < OFF_LOOP_BYTES else await asyncio.to_thread(requested_model, body)
        await self.gate.admit(ex, model)
        upstream = self.routes.cloudflare
        if upstream is None:
            raise NoUpstream("Cloudflare Workers AI is not configured: set LLM_CF_URL (your account's "
                             ".../ai/run URL) and LLM_CF_TOKEN")
        ex.upstream = upstream.name
        await forward(ex, self.client, upstream, body, model_url(upstream, model))

    async def chat(self, ex: Exchange) -> None:
        body = await ex.read_body(self.max_body_bytes)
        model = requested_model(body) if len(body) < OFF_LOOP_BYTES else await asyncio.to_thread(requested_model, body)
        if self.routes.is_local(model):
            await self.local_chat(ex, body)  # which names the model itself
            return
        await self.gate.admit(ex, model)
        route, strip_prefix = self.routes.route(model)
        if strip_prefix:
            body = replace_top_level_string(body, "model", model.removeprefix(OLLAMA_PREFIX))
        ex.cancel_on_disconnect()

        def attempt(lease, final: bool) -> Awaitable[Answer]:  # no coroutine of its own: one fewer per request
            ex.use_deployment(lease.deployment)
            return open_upstream(ex, self.client, lease.deployment.upstream, body, None, final)

        response = await self.retrier.run(route, attempt, ex.leases)
        await relay_and_close(ex, ex.leases[-1].deployment.upstream, response, stream_error_record)

