"""The flow every translating chat surface shares.

A request whose model is served by an upstream speaking the surface's own API passes through untouched
(apart from the model name, and the PROMPT system message if one applies). Anything else is decoded into a
neutral `Chat`, answered by the gateway, and the events are encoded back into the surface's wire format.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable

import orjson

from llmrelay.access.limits import BYTES_PER_TOKEN
from llmrelay.access.model_gate import ModelGate
from llmrelay.asgi import Exchange
from llmrelay.core.chat import (
    OFF_LOOP_BYTES,
    Chat,
    ChatEvent,
    Completion,
    Finish,
    collect,
)
from llmrelay.core.errors import RelayError
from llmrelay.core.json_bytes import replace_top_level_string
from llmrelay.providers.http1 import Response
from llmrelay.relay.forwarding import open_upstream, relay_and_close
from llmrelay.routing.gateway import Gateway
from llmrelay.routing.models import Deployment
from llmrelay.surfaces.decoding import json_object, model_of

DROP_PARAMS_HEADER = b"x-llmrelay-drop-params"


class StreamEncoder:
    """Turns events into the surface's stream records; returns b"" for events it has nothing to say about."""

    def head(self) -> bytes:
        return b""

    def event(self, event: ChatEvent) -> bytes:
        raise NotImplementedError

    def error(self, error: RelayError) -> bytes:
        raise NotImplementedError


class ChatSurface:
    api = ""  # the provider kind that speaks this surface's API
    stream_content_type = b"text/event-stream"

    def __init__(self, gateway: Gateway, gate: ModelGate, max_body_bytes: int):
        self.gateway = gateway
        self.gate = gate
        self.max_body_bytes = max_body_bytes

    # ---- what each surface defines ----

    def decode(self, request: dict) -> Chat:
        """The neutral chat for a request in this surface's API (a plain function will do)."""
        raise NotImplementedError

    def encoder(self, chat: Chat) -> StreamEncoder:
        """The stream encoder for one answer (a StreamEncoder class taking the chat will do)."""
        raise NotImplementedError

    def render(self, chat: Chat, completion: Completion) -> dict:
        raise NotImplementedError

    def error_body(self, error: RelayError) -> bytes:
        raise NotImplementedError

    def stream_error_record(self, error: RelayError, last_chunk: bytes, sse: bool) -> bytes:
        raise NotImplementedError

    def add_prompt(self, request: dict, prompt: str) -> bool:
        """Give a request without a system message the PROMPT one; False when it already has one."""
        raise NotImplementedError

    def passthrough_url(self, deployment: Deployment) -> str:
        return deployment.upstream.chat_url

    # ---- the shared flow ----

    async def handle(self, ex: Exchange, body: bytes | None = None) -> None:
        """A chat request; `body` when it has been read already (the seed's endpoint hands the embedded
        model's requests here). One method, not one reading the body and one handling it: a coroutine fewer."""
        if body is None:
            body = await ex.read_body(self.max_body_bytes)
        ex.error_body = self.error_body
        request = json_object(body) if len(body) < OFF_LOOP_BYTES else await asyncio.to_thread(json_object, body)
        model = model_of(request)
        await self.gate.admit(ex, model)
        route = self.gateway.route(model)
        chat: Chat | None = None  # decoded only if an attempt has to translate
        ex.cancel_on_disconnect()

        def attempt(lease, final: bool) -> Awaitable:
            # A plain function handing back the upstream call's coroutine: one coroutine fewer on the same API.
            deployment = lease.deployment
            ex.use_deployment(deployment)
            if deployment.provider == self.api:
                return open_upstream(ex, self.gateway.client, deployment.upstream,
                                     self.same_api_body(body, request, deployment), self.passthrough_url(deployment),
                                     final)
            return translated(deployment)

        async def translated(deployment: Deployment):
            nonlocal chat
            if chat is None:
                chat = (self.decode(request) if len(body) < OFF_LOOP_BYTES
                        else await asyncio.to_thread(self.decode, request))
                chat.size = len(body)
                # read only when translating: the same API never drops anything
                chat.drop_untranslated = (ex.header(DROP_PARAMS_HEADER) or b"").lower() in (b"true", b"1", b"yes")
                chat.received_ns = time.monotonic_ns()
            events = await self.gateway.chat(chat, deployment)
            # The first event is awaited here, so that an upstream failing before it can still be retried.
            return await with_first_event(events)

        answer = await self.gateway.retrier.run(route, attempt, ex.leases)
        if isinstance(answer, Response):
            await relay_and_close(ex, deployment_upstream(ex.leases), answer, self.stream_error_record)
        elif chat.stream:
            await self.stream(ex, chat, answer)
        else:
            completion = await collect(answer)
            ex.count_tokens(completion.usage.prompt_tokens, completion.usage.completion_tokens)
            await ex.respond_json(200, self.render(chat, completion))

    def same_api_body(self, body: bytes, request: dict, deployment: Deployment) -> bytes:
        prompt = self.gateway.prompt
        if prompt and self.add_prompt(request, prompt):
            request["model"] = deployment.model
            return orjson.dumps(request)
        if deployment.model != request["model"]:
            return replace_top_level_string(body, "model", deployment.model)
        return body

    async def stream(self, ex: Exchange, chat: Chat, events: AsyncIterator[ChatEvent]) -> None:
        encoder = self.encoder(chat)
        await ex.start(200, [(b"content-type", self.stream_content_type), (b"cache-control", b"no-cache")])
        head = encoder.head()
        if head:
            await ex.body(head, more=True)
        pieces = 0  # pieces of the answer sent: its estimated tokens if it ends without the upstream's counts
        try:
            try:
                async for event in events:
                    data = encoder.event(event)
                    if type(event) is Finish:
                        if event.usage is not None:
                            ex.count_tokens(event.usage.prompt_tokens, event.usage.completion_tokens)
                    elif data:
                        pieces += 1
                    if data:
                        await ex.body(data, more=True)
            except RelayError as error:
                ex.error_type = error.type
                await ex.body(encoder.error(error), more=True)
            await ex.body(b"")
        finally:
            # Also when the client leaves mid-stream (the task is cancelled): what it was sent counts against
            # its limits and shows in its usage records.
            if ex.prompt_tokens is None and ex.completion_tokens is None:
                ex.count_tokens(ex.body_size // BYTES_PER_TOKEN, pieces, estimated=True)


async def with_first_event(events: AsyncIterator[ChatEvent]) -> AsyncIterator[ChatEvent]:
    """`events` with its first event already received (errors before it are raised here)."""
    try:
        first = await anext(events)
    except StopAsyncIteration:
        return events

    async def chained():
        try:
            yield first
            async for event in events:
                yield event
        finally:
            await events.aclose()  # releases the upstream connection even if the reader stops early
    return chained()


def deployment_upstream(leases: list):
    return leases[-1].deployment.upstream
