"""Relaying an upstream's answer to the client as it comes: the same-API paths of every surface, and the
cluster's node-to-node forwarding. Typed against `Answer`, the little of an HTTP response it reads."""

from typing import Protocol

import orjson

from llmrelay.access.limits import BYTES_PER_TOKEN
from llmrelay.asgi import Exchange
from llmrelay.core.errors import RelayError
from llmrelay.providers.http_client import UpstreamClient
from llmrelay.providers.upstream import Upstream
from llmrelay.providers.wire import broken_off, error_from_response
from llmrelay.relay.headers import client_response_headers, upstream_request_lines
from llmrelay.usage.tokens import TokenTap

_SSE = b"text/event-stream"


class Answer(Protocol):
    """An upstream's answer as the relay reads it (providers/http1.py's Response is one)."""
    status: int
    raw_headers: list[tuple[bytes, bytes]]
    content_length: int | None

    @property
    def headers(self) -> dict[str, str]: ...

    @property
    def ended(self) -> bool: ...

    def take(self) -> bytes | None: ...

    async def next_chunk(self) -> bytes | None: ...

    async def read(self, limit: int | None = None) -> bytes: ...

    def close(self) -> None: ...


async def forward(ex: Exchange, client: UpstreamClient, upstream: Upstream, body: bytes,
                  url: str | None = None, error_record=None) -> None:
    """Send the client's body to the upstream and relay the answer as it comes (no retries)."""
    ex.cancel_on_disconnect()
    response = await open_upstream(ex, client, upstream, body, url, final=True)
    await relay_and_close(ex, upstream, response, error_record or stream_error_record)


RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 529})


async def open_upstream(ex: Exchange, client: UpstreamClient, upstream: Upstream, body: bytes, url: str | None,
                        final: bool) -> Answer:
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


async def relay_and_close(ex: Exchange, upstream: Upstream, response: Answer, error_record) -> None:
    try:
        await relay(ex, upstream, response, error_record)
    finally:
        # Closing an unfinished response drops its connection: that is how a client's cancel, or a
        # broken stream, reaches the upstream.
        response.close()


async def relay(ex: Exchange, upstream: Upstream, response: Answer, error_record) -> None:
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
    estimate: the prompt from the body's size, one token per streamed event but the role, finish and [DONE]
    ones, as OpenAI streams them."""
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
