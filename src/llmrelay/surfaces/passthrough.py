"""The seed's endpoint, `POST /api/v1/chat`: the body goes to the upstream chosen by its model, byte for
byte, and the upstream's status, headers and bytes come back as they arrive."""

import asyncio
from collections.abc import Awaitable

import orjson

from llmrelay.access.limits import BYTES_PER_TOKEN
from llmrelay.access.model_gate import ModelGate
from llmrelay.asgi import Exchange
from llmrelay.core import json_depth
from llmrelay.core.chat import OFF_LOOP_BYTES
from llmrelay.core.errors import (
    BadRequest,
    NoUpstream,
    RelayError,
)
from llmrelay.core.json_bytes import replace_top_level_string
from llmrelay.providers.cloudflare import model_url
from llmrelay.providers.http1 import Response
from llmrelay.providers.http_client import UpstreamClient
from llmrelay.providers.upstream import Upstream
from llmrelay.providers.wire import broken_off, error_from_response
from llmrelay.routing.names import OLLAMA_PREFIX
from llmrelay.routing.passthrough import PassthroughRoutes
from llmrelay.routing.retry import Retrier
from llmrelay.surfaces.proxy_headers import (
    client_response_headers,
    upstream_request_lines,
)
from llmrelay.usage.tokens import TokenTap

_SSE = b"text/event-stream"


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

        def attempt(lease, final: bool) -> Awaitable[Response]:  # no coroutine of its own: one fewer per request
            ex.use_deployment(lease.deployment)
            return open_upstream(ex, self.client, lease.deployment.upstream, body, None, final)

        response = await self.retrier.run(route, attempt, ex.leases)
        await relay_and_close(ex, ex.leases[-1].deployment.upstream, response, stream_error_record)

async def forward(ex: Exchange, client: UpstreamClient, upstream: Upstream, body: bytes,
                  url: str | None = None, error_record=None) -> None:
    """Send the client's body to the upstream and relay the answer as it comes (no retries)."""
    ex.cancel_on_disconnect()
    response = await open_upstream(ex, client, upstream, body, url, final=True)
    await relay_and_close(ex, upstream, response, error_record or stream_error_record)


RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 529})


async def open_upstream(ex: Exchange, client: UpstreamClient, upstream: Upstream, body: bytes, url: str | None,
                        final: bool) -> Response:
    """The upstream's response to the client's body. Unless this is the last attempt, an answer worth
    retrying (429, 5xx) is turned into a retryable error instead of being relayed."""
    headers = upstream_request_lines(ex.scope["headers"], upstream, ex.request_id)
    response = await client.post(upstream, body, headers, url)
    if response.status in RETRY_STATUSES and not final:
        try:
            raise await error_from_response(upstream, response)
        finally:
            response.close()
    return response


async def relay_and_close(ex: Exchange, upstream: Upstream, response: Response, error_record) -> None:
    try:
        await relay(ex, upstream, response, error_record)
    finally:
        # Closing an unfinished response drops its connection: that is how a client's cancel, or a
        # broken stream, reaches the upstream.
        response.close()


def requested_model(body: bytes) -> str:
    """The body's model: the only thing the pass-through reads of the request."""
    return model_of(json_object(body))


def json_object(body: bytes) -> dict:
    try:
        request = json_depth.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON ({exc}); send a JSON object") from None
    if not isinstance(request, dict):
        raise BadRequest("the request body must be a JSON object with a \"model\" field")
    return request


def model_of(request: dict) -> str:
    model = request.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("the request body needs a \"model\" field naming the model, for example \"llama3\"")
    if len(request) > 1:
        for key in request:
            # Go's JSON decoding (Ollama's) matches field names case-insensitively, the last one winning: a
            # body with "model" and "Model" would be checked for one model and answered by the other.
            if len(key) == 5 and key != "model" and key.lower() == "model":
                raise BadRequest(f"the request body names its model twice (\"model\" and \"{key}\"); send only "
                                 "\"model\"")
    return model


async def relay(ex: Exchange, upstream: Upstream, response: Response, error_record) -> None:
    headers = client_response_headers(response.raw_headers)
    if response.status >= 400:
        ex.error_type = "upstream_error"  # relayed in the upstream's own shape; the status says which
    tokens = TokenTap()
    if response.content_length is not None:
        # A whole answer of known size: one read, one write.
        try:
            data = await response.read()
        except OSError as exc:
            raise broken_off(upstream, exc) from None
        headers.append((b"content-length", str(len(data)).encode()))
        await ex.start(response.status, headers)
        await ex.body(data)
        tokens.whole(data)
        count_relayed_tokens(ex, tokens)
        return

    await ex.start(response.status, headers)
    last = b"\n"
    ended = False
    try:
        try:
            while True:
                chunk = response.take()  # usually here already: a stream's first chunk comes with the head
                if chunk is None and (chunk := await response.next_chunk()) is None:
                    break
                tokens.chunk(chunk)
                last = chunk
                ended = response.ended  # then the last chunk and the end of the answer go out together
                await ex.body(chunk, more=not ended)
        except OSError as exc:
            error = broken_off(upstream, exc)
            ex.error_type = error.type
            sse = (response.headers.get("content-type") or "").encode().startswith(_SSE)
            await ex.body(error_record(error, last, sse), more=True)
        if not ended:
            await ex.body(b"")
    finally:
        # Also when the client leaves mid-stream (the task is cancelled): what it was sent counts against its
        # limits and shows in its usage records, however it ended the connection.
        count_relayed_tokens(ex, tokens)


def count_relayed_tokens(ex: Exchange, tokens: TokenTap) -> None:
    """The upstream's own counts; when it reported none (an OpenAI stream without `include_usage`), an
    estimate: the prompt from the body's size, one token per streamed event but the role, finish and [DONE] ones, as OpenAI streams them."""
    if tokens.found:
        ex.count_tokens(tokens.prompt, tokens.completion)
    elif ex.status < 400:
        ex.count_tokens(ex.body_size // BYTES_PER_TOKEN, max(0, tokens.events - 3), estimated=True)


def stream_error_record(error: RelayError, last_chunk: bytes, sse: bool) -> bytes:
    """The stream's last record, in the stream's own framing, starting on a fresh line or event."""
    payload = {"error": {"type": error.type, "message": error.message}}
    if sse:
        payload["type"] = "error"  # the shape Anthropic's SDKs read; OpenAI's read the "error" object
        return sse_boundary(last_chunk) + b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"
    separator = b"" if last_chunk.endswith(b"\n") else b"\n"
    return separator + orjson.dumps(payload) + b"\n"


def sse_boundary(last_chunk: bytes) -> bytes:
    """What must follow `last_chunk` for the next bytes to start a new server-sent event."""
    if last_chunk.endswith(b"\n\n"):
        return b""
    return b"\n" if last_chunk.endswith(b"\n") else b"\n\n"
