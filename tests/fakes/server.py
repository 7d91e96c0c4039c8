"""A real HTTP server on loopback, in its own thread and event loop, that records what it receives.

Fake upstreams build on it. Their behaviour is steered by the end of the requested model's name, so a test
can pick a scenario through the node without any side channel (`gpt-hold-last` routes to the OpenAI fake and
holds its last chunk):

- ``hold-last``  streams all chunks but the last, then waits until the test sets ``release``;
- ``die-midway`` sends two chunks, then drops the connection without ending the stream;
- ``hang``       sends one chunk, then waits forever;
- ``slow``       waits ``slow_seconds`` before answering at all;
- ``missing``    answers 404 in the upstream's own error shape;
- ``no-such-model-500``  answers 500 saying the model does not exist (as OpenAI-compatible servers that
  mean 404 do), in the upstream's own error shape;
- ``overloaded-503``     answers 503, the upstream overloaded;
- ``rate-limited-hour``  answers 429 with `Retry-After: 3600`.
"""

import asyncio
import threading
import time
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    peer_port: int
    at: float = field(default_factory=time.monotonic)
    names: list[str] = field(default_factory=list)  # every header name as sent, lower-cased, repeats included
    raw_path: str = ""  # the path as it came on the request line, percent-encoding included


class FakeServer:
    def __init__(self):
        self.requests: list[Recorded] = []
        self.release = threading.Event()  # lets a held-back last chunk go
        self.disconnected = threading.Event()  # set when a client went away mid-answer
        self.slow_seconds = 2.0
        self.calls: dict[str, int] = {}  # requests per model, for the fail-once scenarios
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # Subclasses add their routes.
    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeServer":
        started = threading.Event()
        threading.Thread(target=self._serve, args=(started,), daemon=True).start()
        started.wait(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def reset(self) -> None:
        self.requests.clear()
        self.calls.clear()
        self.release.clear()
        self.disconnected.clear()

    def drop_connections(self) -> None:
        """Close every open connection, as an upstream restarting or timing out idle keep-alives does."""
        async def drop():
            for protocol in list(self._runner.server.connections):
                protocol.force_close()
        asyncio.run_coroutine_threadsafe(drop(), self._loop).result(5)

    def last(self) -> Recorded:
        return self.requests[-1]

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(middlewares=[self._record], client_max_size=64 * 1024 * 1024)
        self.routes(app)
        # handler_cancellation: a client that goes away cancels the handler, which is how we see it.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        started.set()
        self._loop.run_forever()

    @web.middleware
    async def _record(self, request: web.Request, handler):
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.requests.append(Recorded(request.method, request.path, dict(request.headers), body,
                                      peer[1] if peer else 0, names=[name.lower() for name in request.headers],
                                      raw_path=request.raw_path.split("?")[0]))
        try:
            return await handler(request)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            # Real upstreams validate their input; a malformed request gets 400, never a crash.
            return self.bad_request(f"invalid request: {type(exc).__name__} {exc}")

    def bad_request(self, message: str) -> web.Response:
        return web.json_response({"error": message}, status=400)

    def error(self, status: int, message: str, headers: dict | None = None) -> web.Response:
        """An error in the upstream's own shape (Ollama's `{"error": "..."}` here; subclasses override)."""
        return web.json_response({"error": message}, status=status, headers=headers)

    async def stream(self, request: web.Request, model: str, content_type: str, chunks: list[bytes]):
        """Send `chunks` as a chunked response, following the scenario the model's name picks."""
        model = scenario(model)
        if model == "slow":
            await asyncio.sleep(self.slow_seconds)
        response = web.StreamResponse(headers={"Content-Type": content_type})
        await response.prepare(request)
        try:
            for index, chunk in enumerate(chunks):
                if model == "hold-last" and index == len(chunks) - 1:
                    while not self.release.is_set():
                        await asyncio.sleep(0.005)
                if model == "die-midway" and index == 2:
                    request.transport.abort()
                    return response
                if model == "truncated" and index == 2:
                    await response.write(chunk[: len(chunk) // 2])  # half a record, then the connection drops
                    request.transport.abort()
                    return response
                if model == "hang" and index == 1:
                    await asyncio.sleep(3600)
                await response.write(chunk)
            await response.write_eof()
        except (asyncio.CancelledError, ConnectionResetError):
            self.disconnected.set()
            raise
        return response

    def fault(self, model: str) -> web.Response | None:
        """An early answer for the fault scenarios that do not depend on the protocol."""
        kind = scenario(model)
        if kind in ("fail-once", "rate-limited-once"):
            self.calls[model] = self.calls.get(model, 0) + 1
            if self.calls[model] == 1:
                if kind == "fail-once":
                    return web.json_response({"error": "internal error, try again"}, status=500)
                return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "1"})
        if kind == "always-500":
            return web.json_response({"error": "internal error"}, status=500)
        if kind == "no-such-model-500":
            return self.error(500, f"The model `{model}` does not exist or you do not have access to it.")
        if kind == "overloaded-503":
            return self.error(503, "The server is overloaded or not ready yet.")
        if kind == "rate-limited-hour":
            return self.error(429, "Rate limit reached; try again in an hour.", {"Retry-After": "3600"})
        if kind == "malformed":
            return web.Response(body=b'{"model": "x", "message": {"content": "cut', content_type="application/json")
        if kind == "context-too-long":
            return web.json_response({"error": "prompt too long: exceeds the context window of this model"},
                                     status=400)
        return None

    async def slow_if_asked(self, model: str) -> None:
        if scenario(model) == "slow":
            await asyncio.sleep(self.slow_seconds)


SCENARIOS = ("hold-last", "die-midway", "hang", "slow", "missing", "fail-once", "rate-limited-once", "malformed",
             "always-500", "truncated", "context-too-long", "no-such-model-500", "overloaded-503",
             "rate-limited-hour")


def scenario(model: str) -> str | None:
    return next((name for name in SCENARIOS if model.endswith(name)), None)
