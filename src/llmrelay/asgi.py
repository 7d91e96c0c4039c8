"""The small ASGI layer the node needs: read a bounded body, send a response, keep one record per request.

Written by hand on purpose: a framework's routing and request objects cost more per request than the
whole proxy step we aim for, and the node has only a handful of routes.
"""

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable

import orjson

from llmrelay.core.errors import BadRequest, PayloadTooLarge, RelayError, RequestTimeout

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

JSON = b"application/json"
# The scope extension through which the server takes a callback for a client that leaves mid-answer.
DISCONNECT_EXTENSION = "llmrelay.on_disconnect"
# The scope extension saying that `send` is a bound method of an object that also sends and receives without
# a message: `start_response(status, headers)`, `send_body(body, more) -> bool` (False: the client is not
# reading, wait through `send`) and `whole_body() -> bytes | None` (None: not all of it is here, or some was
# taken; use `receive`). A coroutine and a dict fewer per call, and every chunk of a stream is one call.
DIRECT_SEND_EXTENSION = "llmrelay.direct_send"
_MAX_REQUEST_ID = 128


class Exchange:
    """One request as the access log and the handlers see it."""

    __slots__ = ("scope", "receive", "send", "method", "path", "request_id", "started", "model", "upstream",
                 "status", "bytes_out", "error_type", "client_gone", "error_body", "watch", "handler", "leases",
                 "deployment", "key", "body_size", "request_body", "forwarded", "first_out", "prompt_tokens",
                 "completion_tokens",
                 "tokens_estimated", "direct", "admitted", "cors", "endpoint", "body_timeout")

    def __init__(self, scope: Scope, receive: Receive, send: Send, watch: "DisconnectWatch", body_timeout: float):
        """`body_timeout`: seconds a client may take to send its whole body (the node's own server enforces it
        before the app sees the request; under another ASGI server, read_body does)."""
        self.scope = scope
        self.body_timeout = body_timeout
        self.receive = receive
        self.send = send
        extensions = scope.get("extensions")
        self.direct = send.__self__ if extensions and DIRECT_SEND_EXTENSION in extensions else None
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.started = time.perf_counter()
        self.request_id = _request_id(scope["headers"])
        self.model: str | None = None
        self.upstream: str | None = None
        self.status = 0
        self.bytes_out = 0
        self.error_type: str | None = None
        self.client_gone = False
        self.error_body = error_body  # a surface sets its own API's error shape
        self.watch = watch
        self.handler: asyncio.Task | None = None  # cancelled if the client goes away
        self.leases: list = []  # holds on deployments, released when the answer is done
        self.deployment = None  # the last deployment tried, whether or not it answered
        self.key = None  # the ApiKey the request came with, when the node requires keys
        self.body_size = 0
        self.request_body = b""  # kept for forwarding to another node of the cluster
        self.forwarded = False  # came from another node of the cluster
        self.admitted = False  # holds a slot of the node's capacity
        self.first_out = 0.0  # perf_counter when the first byte of the answer's body went out
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.tokens_estimated = False
        self.cors: list[tuple[bytes, bytes]] | None = None  # CORS headers for an allowed cross-origin caller
        self.endpoint = None  # the endpoints.Endpoint dispatched to

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.scope["headers"]:
            if key == name:
                return value
        return None

    def use_deployment(self, deployment) -> None:
        self.deployment = deployment
        self.upstream = deployment.upstream.name

    def count_tokens(self, prompt: int | None, completion: int | None, estimated: bool = False) -> None:
        self.prompt_tokens = prompt
        self.completion_tokens = completion
        self.tokens_estimated = estimated


    async def read_body(self, limit: int) -> bytes:
        """The whole request body, refusing anything over `limit` bytes before buffering it, and a client
        that takes longer than `body_timeout` to send it. (The node's own server hands the app only bodies
        that are all in, or too large; this reads bodies still arriving under any other ASGI server.)"""
        declared = self.header(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise BadRequest("the Content-Length header is not a number") from None
            if size > limit:
                raise PayloadTooLarge(_too_large(limit))
        direct = self.direct
        body = direct.whole_body() if direct is not None else None  # all here already: the usual case
        if body is None:
            message = await self.receive()
            body = message.get("body", b"")
            if message.get("more_body") and len(body) <= limit:
                body = await self._rest_of_body(body, limit)
        if len(body) > limit:
            raise PayloadTooLarge(_too_large(limit))
        self.body_size = len(body)
        self.request_body = body
        return body

    async def _rest_of_body(self, first: bytes, limit: int) -> bytes:
        chunks = [first]
        size = len(first)
        more = True
        try:
            async with asyncio.timeout(self.body_timeout):  # one deadline for the whole body, not one per read
                while more:
                    message = await self.receive()
                    if message["type"] == "http.disconnect":
                        raise ClientGone()
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        raise PayloadTooLarge(_too_large(limit))
                    chunks.append(chunk)
                    more = message.get("more_body", False)
        except TimeoutError:
            raise RequestTimeout(f"the request body did not arrive within {self.body_timeout:g} s; send it "
                                 "faster, or raise LLMRELAY_BODY_TIMEOUT") from None
        return b"".join(chunks)

    def cancel_on_disconnect(self) -> None:
        """From now on, a client that goes away cancels the task handling it (and so its upstream call).

        Only if the request lasts (see DisconnectWatch), and through the server's DISCONNECT_EXTENSION: the
        node's server protocol calls back when the client leaves mid-answer.
        """
        self.handler = self.watch.current_task()
        self.watch.add(self)

    def listen_for_disconnect(self) -> None:
        extensions = self.scope.get("extensions")
        if extensions and DISCONNECT_EXTENSION in extensions:
            extensions[DISCONNECT_EXTENSION](self.send, self._client_left)

    def _client_left(self) -> None:
        handler = self.handler
        if handler is not None and not handler.done():
            self.client_gone = True
            handler.cancel()

    def stop_watching(self) -> None:
        self.watch.discard(self)
        self.handler = None

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        headers.append((b"x-request-id", self.request_id.encode()))
        if self.cors is not None:
            headers.extend(self.cors)
        if self.direct is not None:
            self.direct.start_response(status, headers)
        else:
            await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def body(self, data: bytes, more: bool = False) -> None:
        if not more:
            # A connection closed after the last byte must not cancel what is left to do (recording).
            self.stop_watching()
        if not self.first_out and data:
            self.first_out = time.perf_counter()
        self.bytes_out += len(data)
        direct = self.direct
        if direct is None or not direct.send_body(data, more):
            await self.send({"type": "http.response.body", "body": data, "more_body": more})

    async def respond(self, status: int, body: bytes, content_type: bytes = JSON,
                      headers: list[tuple[bytes, bytes]] | None = None) -> None:
        all_headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        if headers:
            all_headers.extend(headers)
        await self.start(status, all_headers)
        await self.body(body)

    async def respond_json(self, status: int, payload) -> None:
        await self.respond(status, orjson.dumps(payload))

    async def respond_error(self, error: RelayError) -> None:
        self.error_type = error.type
        extra = [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
        await self.respond(error.status, self.error_body(error), headers=extra)


class DisconnectWatch:
    """Listens for clients that go away, but only on requests that last.

    Most answers come back within milliseconds, so a sweeper listens (through the server's
    DISCONNECT_EXTENSION) only for requests still running after `SWEEP_SECONDS`; a client that leaves sooner
    costs an upstream call that was about to finish anyway. A callback, not a task reading `receive` for
    `http.disconnect`: such a task cost more than a tenth of a fast proxied request, and when a stream ended
    its cancellation ran on the way of the next request on the connection.
    """

    SWEEP_SECONDS = 0.05

    def __init__(self):
        self.exchanges: set[Exchange] = set()
        self._sweeper: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def current_task(self) -> asyncio.Task | None:
        """The task running now. Asked of the loop the watch last saw: on Python 3.11, finding the running loop
        costs a getpid() system call. No task there means another loop runs now (an app served again)."""
        task = asyncio.current_task(self._loop) if self._loop is not None else None
        if task is None:
            self._loop = asyncio.get_running_loop()
            task = asyncio.current_task(self._loop)
        return task

    def add(self, ex: Exchange) -> None:
        self.exchanges.add(ex)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    def discard(self, ex: Exchange) -> None:
        self.exchanges.discard(ex)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.SWEEP_SECONDS)
            started_before = time.perf_counter() - self.SWEEP_SECONDS
            for ex in [ex for ex in self.exchanges if ex.started <= started_before]:
                self.exchanges.discard(ex)
                ex.listen_for_disconnect()

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None


class ForwardTo(Exception):
    """The model is served by another node of the cluster: the request goes there."""

    def __init__(self, node):
        super().__init__(node.id)
        self.node = node


class ClientGone(Exception):
    """The client closed its connection; there is nobody left to answer."""


def error_body(error: RelayError) -> bytes:
    return orjson.dumps({"error": {"type": error.type, "message": error.message}})


def _too_large(limit: int) -> str:
    return (f"the request body is larger than the node accepts ({limit} bytes); send a smaller request "
            "or raise LLMRELAY_MAX_BODY_BYTES")


def _request_id(headers) -> str:
    for key, value in headers:
        if key == b"x-request-id":
            # Keep a client's id only if it is safe to echo into headers and logs.
            if 0 < len(value) <= _MAX_REQUEST_ID and value.isascii() and value.decode().isprintable():
                return value.decode()
            break
    return new_request_id()


_ID_BATCH = 256
_spare_ids: list[str] = []
os.register_at_fork(after_in_child=_spare_ids.clear)  # a forked worker must not hand out its parent's ids


def new_request_id() -> str:
    """128 random bits in hex: unique, not secret, so a PRNG is enough (no system call). Drawn and formatted
    256 at a time: a draw per request is a noticeable part of a stream's first chunk, a list's pop is not."""
    if not _spare_ids:
        batch = "%0*x" % (32 * _ID_BATCH, random.getrandbits(128 * _ID_BATCH))
        _spare_ids.extend(batch[start:start + 32] for start in range(0, len(batch), 32))
    return _spare_ids.pop()
