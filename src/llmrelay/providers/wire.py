"""Reading upstream answers: JSON bodies, NDJSON lines and server-sent events, with bounded buffers, and
turning an upstream's HTTP error into the node's error."""

from collections.abc import AsyncIterator

import orjson

from llmrelay.core import json_depth
from llmrelay.core.errors import (
    RelayError,
    UpstreamTimeout,
    UpstreamUnavailable,
    from_upstream_status,
)
from llmrelay.providers.http1 import Response
from llmrelay.providers.http_client import UpstreamClient
from llmrelay.providers.upstream import Upstream

MAX_RECORD_BYTES = 16 * 1024 * 1024  # one NDJSON line or SSE event; more means a broken upstream
MAX_ERROR_BYTES = 64 * 1024


async def post_json(client: UpstreamClient, upstream: Upstream, url: str, payload: dict | bytes) -> Response:
    """POST `payload` (or its JSON already serialised); return the response once it is known to be a success,
    else raise the node's error."""
    body = payload if payload.__class__ is bytes else orjson.dumps(payload)
    response = await client.post(upstream, body, upstream.headers(), url)
    if response.status >= 400:
        try:
            raise await error_from_response(upstream, response)
        finally:
            response.close()
    return response


async def post_for_json(client: UpstreamClient, upstream: Upstream, url: str, payload: dict | bytes) -> dict:
    """POST `payload` and return the upstream's whole JSON answer, the connection released either way."""
    response = await post_json(client, upstream, url, payload)
    try:
        return await read_json(upstream, response)
    finally:
        response.close()


async def error_from_response(upstream: Upstream, response: Response) -> RelayError:
    try:
        body = await response.read(MAX_ERROR_BYTES)
    except OSError:
        body = b""
    return from_upstream_status(upstream.name, response.status, error_detail(body),
                                response.headers.get("retry-after"))


def error_detail(body: bytes) -> str:
    """The human part of an upstream's error body, whichever API's shape it has."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace").strip()[:500] or "no details"
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, str):
            return error
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        errors = data.get("errors")  # Cloudflare: {"errors": [{"message": ...}]}
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message", errors[0]))
    return body.decode("utf-8", "replace")[:500]


async def read_json(upstream: Upstream, response: Response) -> dict:
    try:
        body = await response.read()
    except OSError as exc:
        raise broken_off(upstream, exc) from None
    if json_depth.too_deep(body):
        raise UpstreamUnavailable(f"the {upstream.name} upstream answered with JSON nested more than "
                                  f"{json_depth.MAX_DEPTH} levels deep")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamUnavailable(f"the {upstream.name} upstream answered with something that is not JSON") from None


def broken_off(upstream: Upstream, exc: BaseException) -> RelayError:
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(
            f"the {upstream.name} upstream at {upstream.display_url} stalled mid-answer ({exc}); raise "
            "LLMRELAY_IDLE_TIMEOUT or LLMRELAY_TOTAL_TIMEOUT if it is just slow")
    return UpstreamUnavailable(
        f"the {upstream.name} upstream at {upstream.display_url} broke off its answer ({type(exc).__name__}); "
        "try again")


async def _chunks(upstream: Upstream, response: Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.iter_chunks():
            yield chunk
    except OSError as exc:
        raise broken_off(upstream, exc) from None


async def ndjson_records(upstream: Upstream, response: Response) -> AsyncIterator[dict]:
    buffer = b""
    async for chunk in _chunks(upstream, response):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield _json_record(upstream, line)
        if len(buffer) > MAX_RECORD_BYTES:
            raise UpstreamUnavailable(f"the {upstream.name} upstream sent a line over {MAX_RECORD_BYTES} bytes")
    if buffer.strip():
        yield _json_record(upstream, buffer)


async def sse_events(upstream: Upstream, response: Response) -> AsyncIterator[tuple[str, str]]:
    """(event name, data) for each server-sent event; the name is "message" when none is given."""
    buffer = b""
    held_cr = b""  # a read ending in "\r": its "\n" may open the next read, and the pair must stay one line end
    async for chunk in _chunks(upstream, response):
        chunk = held_cr + chunk
        held_cr = b"\r" if chunk.endswith(b"\r") else b""
        buffer += chunk[:-1].replace(b"\r\n", b"\n") if held_cr else chunk.replace(b"\r\n", b"\n")
        *events, buffer = buffer.split(b"\n\n")
        for raw in events:
            event = _parse_event(raw)
            if event is not None:
                yield event
        if len(buffer) > MAX_RECORD_BYTES:
            raise UpstreamUnavailable(f"the {upstream.name} upstream sent an event over {MAX_RECORD_BYTES} bytes")
    buffer += held_cr
    if buffer.strip():
        event = _parse_event(buffer)
        if event is not None:
            yield event


def _parse_event(raw: bytes) -> tuple[str, str] | None:
    name = "message"
    data = []
    for line in raw.decode("utf-8", "replace").split("\n"):
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line.startswith("event:"):
            name = line[6:].strip()
    return (name, "\n".join(data)) if data else None


def _json_record(upstream: Upstream, line: bytes) -> dict:
    if json_depth.too_deep(line):
        raise UpstreamUnavailable(f"the {upstream.name} upstream sent JSON nested more than {json_depth.MAX_DEPTH} "
                                  "levels deep")
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise UpstreamUnavailable(f"the {upstream.name} upstream sent a line that is not JSON") from None
    if not isinstance(record, dict):
        raise UpstreamUnavailable(f"the {upstream.name} upstream sent a line that is not a JSON object")
    return record


def json_data(upstream: Upstream, data: str) -> dict:
    return _json_record(upstream, data.encode())


async def iterate(events: list) -> AsyncIterator:
    for event in events:
        yield event


async def closing(response: Response, events: AsyncIterator) -> AsyncIterator:
    """Relay `events`, and release the upstream connection however the iteration ends."""
    try:
        async for event in events:
            yield event
    finally:
        response.close()
