"""Loopback upstreams for the protocol tests: each connection's bytes are scripted by the test."""

import asyncio
import ssl
import threading


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """One request's head and body (by Content-Length); None once the client closed the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return head, body


class ScriptedUpstream:
    """An asyncio server in the test's own loop. `handler(reader, writer, number)` writes each connection's
    answers (number counts connections from 1); it counts connections and the most open at once."""

    def __init__(self, handler, ssl_context: ssl.SSLContext | None = None):
        self.handler = handler
        self.ssl_context = ssl_context
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.tasks: set[asyncio.Task] = set()

    async def __aenter__(self) -> "ScriptedUpstream":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def url(self, path: str = "/x", host: str = "127.0.0.1") -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    async def _serve(self, reader, writer) -> None:
        self.tasks.add(asyncio.current_task())
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            await self.handler(reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, asyncio.CancelledError):
            pass  # a cancel is the server shutting down: ended quietly, not as an error asyncio would log
        finally:
            self.open -= 1
            writer.close()
            self.tasks.discard(asyncio.current_task())


def answering(*answers: bytes, log: list | None = None):
    """A handler answering a connection's requests with `answers` in turn (the last one repeated)."""
    async def handler(reader, writer, number):
        index = 0
        while (request := await read_request(reader)) is not None:
            if log is not None:
                log.append(request[0])
            writer.write(answers[min(index, len(answers) - 1)])
            await writer.drain()
            index += 1
    return handler


def first_connection_then(first: bytes, later: bytes):
    """A handler answering every request on the first connection with `first`, on later ones with `later`."""
    async def handler(reader, writer, number):
        while (await read_request(reader)) is not None:
            writer.write(first if number == 1 else later)
            await writer.drain()
    return handler


class ThreadedUpstream:
    """A ScriptedUpstream in a thread of its own, for a node running in another process."""

    def __init__(self, handler, ssl_context: ssl.SSLContext | None = None):
        self.upstream = ScriptedUpstream(handler, ssl_context)
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.upstream.__aenter__())
            started.set()
            self.loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        started.wait(10)

    def url(self, path: str = "", host: str = "127.0.0.1") -> str:
        return self.upstream.url(path, host)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.upstream.__aexit__(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def server_context(ca, *names: str):
    """A server-side TLS context with a certificate for `names`, signed by `ca`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context
