"""uvicorn's httptools protocol, guarded against clients that hold connections with slow or endless headers.

uvicorn bounds idle keep-alive connections, but not the time or the bytes a client may spend sending request
headers: a slow client could hold a connection forever, and an endless header line would grow memory. Here a
request's headers must arrive within `header_timeout` seconds and `max_header_bytes` bytes, else the
connection is closed (with 431 for too many bytes). One sweeper per process checks the time, instead of a
timer per request.
"""

import asyncio
import time

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from llmrelay.sockets import no_delay

_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
              b"connection: close\r\ncontent-length: 103\r\n\r\n"
              b'{"error": {"type": "request_header_too_large", "message": "the request headers are larger than allowed"}}')


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout = 10.0
    max_header_bytes = 64 * 1024
    _awaiting: dict["GuardedHttpToolsProtocol", float] = {}  # protocol -> when its headers started
    _sweeper: asyncio.Task | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        no_delay(transport)
        self._header_bytes = 0
        self._await_headers()

    def connection_lost(self, exc) -> None:
        self._awaiting.pop(self, None)
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._await_headers()

    def on_headers_complete(self) -> None:
        self._awaiting.pop(self, None)
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        awaiting = self in self._awaiting
        super().data_received(data)
        if awaiting and self in self._awaiting:  # still in the headers after this chunk
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes and not self.transport.is_closing():
                self._awaiting.pop(self, None)
                self.transport.write(_TOO_LARGE)
                self.transport.close()

    def _await_headers(self) -> None:
        self._header_bytes = 0
        self._awaiting[self] = time.monotonic()
        cls = GuardedHttpToolsProtocol
        if cls._sweeper is None or cls._sweeper.done():
            cls._sweeper = asyncio.get_running_loop().create_task(cls._sweep())

    @classmethod
    async def _sweep(cls) -> None:
        while True:
            await asyncio.sleep(min(1.0, cls.header_timeout / 4))
            too_old = time.monotonic() - cls.header_timeout
            for protocol in [p for p, since in cls._awaiting.items() if since < too_old]:
                cls._awaiting.pop(protocol, None)
                protocol.transport.close()
