"""A pooled HTTP/1.1 client for upstreams, on asyncio protocols and httptools' parser.

Measured on the proxy path (bench/results), aiohttp's client cost about 150 µs a request — three quarters
of the node's time; this client costs a few tens. It does what the node needs and no more: keep-alive pools
per host with a cap on connections (requests beyond it wait in line), request bodies given as bytes,
responses streamed chunk by chunk with backpressure, TLS, proxies from the environment (providers/proxy.py),
and one retry when a pooled connection turns out to have been closed by the upstream.

A connection is reused only when its answer was read to the end as framed by Content-Length or chunked
encoding on an HTTP/1.1 keep-alive connection. Anything else (a timeout, a cancel, a framing error, bytes
nobody asked for) closes it: one client's bytes must never reach another's request.

An upstream is not trusted to be sane: headers and trailers are bounded (MAX_HEADER_BYTES, MAX_HEADERS),
trailers are read and dropped, and a protocol switch (101) or an interim answer (1xx) that declares a body
fails the request (MalformedAnswer) and closes the connection.
"""

import asyncio
import ssl
import time
from collections import deque
from urllib.parse import urlsplit

import httptools

from llmrelay.providers.proxy import Proxies, Proxy, ProxyError, connect_to, open_tunnel
from llmrelay.sockets import no_delay

MAX_CONNECTIONS_PER_HOST = 1024  # LLMRELAY_MAX_CONNECTIONS_PER_HOST's default
IDLE_SECONDS = 30.0  # pooled connections idle longer are closed rather than reused
_PAUSE_AT = 1024 * 1024  # buffered, unread body bytes that pause reading from the upstream
# An answer's head (its interim answers' heads included) and, apart, its trailers: names and values, and lines.
# llhttp sets no limit; a hostile upstream could otherwise send header lines until the first-byte timeout.
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 256
USER_AGENT_LINE = b"user-agent: llmrelay"
SET_HERE = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection"})  # never from callers
_SET_HERE_OR_AGENT = SET_HERE | {b"user-agent"}  # one lookup per header; user-agent only noted


class ConnectTimeout(TimeoutError):
    """No connection within the connect timeout."""


class FirstByteTimeout(TimeoutError):
    """Connected and sent, but no answer started within the first-byte timeout."""


class IdleTimeout(TimeoutError):
    """The answer had started, then the upstream sent nothing for too long."""


class TotalTimeout(TimeoutError):
    """The whole answer took longer than allowed."""


class ConnectionLost(ConnectionError):
    """The upstream closed the connection before its answer was complete."""


class MalformedAnswer(ConnectionLost):
    """The upstream's answer breaks HTTP or the client's limits (a malformed head, headers past
    MAX_HEADER_BYTES, a protocol switch): the request fails and the connection is closed."""


_SWITCHED = "the upstream switched protocols (101 Switching Protocols), which the node never asks for"


class StaleConnection(ConnectionError):
    """A pooled connection was closed by the upstream before it answered; a fresh one may be tried."""


class PoolTimeout(FirstByteTimeout):
    """Every connection the host is allowed was busy until the first-byte deadline."""

    def __init__(self, limit: int):
        super().__init__(f"all {limit} connections allowed to the upstream stayed busy")
        self.limit = limit


class _HeadAnswered(Exception):
    """Stops the parser at the end of a HEAD answer's head: httptools cannot be told that no body follows."""


class Response:
    """An upstream's answer: status and headers at once, the body as it arrives."""

    __slots__ = ("_connection", "status", "raw_headers", "_headers", "content_length", "_chunks", "_buffered",
                 "_complete", "_error", "_waiter", "_released", "last_activity")

    def __init__(self, connection: "Connection"):
        self._connection = connection
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self._headers: dict[str, str] | None = None
        self.content_length: int | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._complete = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future | None = None
        self._released = False
        self.last_activity = time.monotonic()

    @property
    def headers(self) -> dict[str, str]:
        """The headers by lower-case name, decoded; made on first use (the relay needs only the raw list)."""
        if self._headers is None:
            self._headers = {name.decode("latin-1").lower(): value.decode("latin-1")
                             for name, value in self.raw_headers}
        return self._headers

    # -- fed by the connection --

    def _feed(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _PAUSE_AT:
            self._connection.pause()
        self._wake()

    def _finish(self, error: BaseException | None = None) -> None:
        if error is None:
            self._complete = True
        elif not self._complete and self._error is None:  # the first error says what went wrong
            self._error = error
        self._wake()

    def _break(self, error: BaseException) -> None:
        """Fail the answer even if it looked complete: the upstream sent bytes past its end (an answer with
        a wrong Content-Length, or one nobody asked for)."""
        self._complete = False
        self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- read by the node --

    def take(self) -> bytes | None:
        """Everything of the body that has arrived and not been read, as one piece (one write downstream, not
        one per chunk); None if nothing has. Without a coroutine: the relay's loop asks this first."""
        chunks = self._chunks
        if not chunks:
            return None
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        self._connection.resume()
        return data

    async def next_chunk(self) -> bytes | None:
        """The next piece of the body, waiting for it to arrive; None once the body is complete."""
        while True:
            if self._chunks:
                return self.take()
            if self._complete:
                self.release()
                return None
            if self._error is not None:
                if isinstance(self._error, TimeoutError):
                    raise self._error
                raise ConnectionLost(str(self._error) or "the upstream closed the connection mid-answer")
            self._waiter = self._connection.loop.create_future()
            await self._waiter
            self._waiter = None

    async def iter_chunks(self):
        while (chunk := await self.next_chunk()) is not None:
            yield chunk

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body (or its first `limit` bytes, dropping the connection if more was coming)."""
        if self._complete and limit is None:  # the usual case for a small answer: it is all here already
            data = b"".join(self._chunks)
            self._chunks.clear()
            self._buffered = 0
            self.release()
            return data
        parts, size = [], 0
        async for chunk in self.iter_chunks():
            parts.append(chunk)
            size += len(chunk)
            if limit is not None and size >= limit:
                self.close()
                break
        return b"".join(parts)[:limit] if limit is not None else b"".join(parts)

    def release(self) -> None:
        """Give the connection back to the pool (the body was read to its end)."""
        if not self._released:
            self._released = True
            self._connection.done(reusable=self._complete)

    def expire(self, error: TimeoutError) -> None:
        """A deadline passed mid-answer: end it with `error` and drop the connection."""
        self._finish(error)
        self._connection.close()

    @property
    def ended(self) -> bool:
        """The whole body has arrived and been read: nothing more will come."""
        return self._complete and not self._chunks

    @property
    def finished(self) -> bool:
        return self._released or self._complete or self._error is not None

    def close(self) -> None:
        """Stop reading: an unfinished answer's connection is closed, so the upstream sees the cancel."""
        if not self._released:
            self._released = True
            self._connection.done(reusable=self._complete and not self._chunks)


class Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, pool: "Pool", loop: asyncio.AbstractEventLoop):
        self.pool = pool
        # Kept rather than asked for: on Python 3.11 every asyncio.get_running_loop() is a getpid() system call.
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.headers_ready: asyncio.Future | None = None
        self.closed = False
        self.paused = False
        self.idle_since = time.monotonic()
        self.reused = False  # taken from the pool: if it fails before any answer, the upstream had closed it
        self.received = False  # any byte of the current answer has arrived
        self.keep_alive = False  # HTTP/1.1 keep-alive with length or chunked framing, known at the final head
        self.expecting = False  # a final answer is due; bytes at any other time are the upstream's error
        self.interim = False  # parsing a 1xx interim answer, skipped
        self.trailing = False  # the final head has been read: header lines now are trailers
        self.header_room = MAX_HEADER_BYTES  # left for the names and values of the head (or the trailers)
        self.trailer_lines = 0  # trailer lines of the current answer (counted, then dropped)
        self.since_body = 0  # bytes received since the last body byte: heads, trailers, chunk framing
        self.head_request = False  # the answer has a head only, whatever its headers say
        self.said_connection = False  # the answer has a Connection header
        self.counted = False  # holds one of the pool's connection slots (from connected until closed)

    # -- asyncio protocol --

    def connection_made(self, transport) -> None:
        self.transport = transport
        no_delay(transport)

    def data_received(self, data: bytes) -> None:
        self.received = True
        # on_header counts whole lines; this also bounds a line that never ends, which httptools would
        # accumulate out of sight, across reads without a body byte.
        self.since_body += len(data)
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            cause = exc.__context__
            if isinstance(cause, _HeadAnswered):
                # The parser would wait for a body: start a fresh one. Bytes after the head are the upstream's
                # error, so the connection is then not reused.
                self.parser = httptools.HttpResponseParser(self)
                if not data.endswith(b"\r\n\r\n"):
                    self.keep_alive = False
                return
            if isinstance(cause, ConnectionLost):
                error = cause
            elif isinstance(exc, httptools.HttpParserUpgrade):  # on_headers_complete refuses a 101 before this
                error = MalformedAnswer(_SWITCHED)
            else:
                error = MalformedAnswer(f"the upstream sent a malformed HTTP response ({exc})")
            self._fail(error, even_if_complete=True)
            self.close()
            return
        if self.since_body > MAX_HEADER_BYTES:
            self._fail(self._oversized(), even_if_complete=True)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone()
        response = self.response
        if (response is not None and self.headers_ready is not None and self.headers_ready.done()
                and response.content_length is None
                and "chunked" not in response.headers.get("transfer-encoding", "").lower()):
            response._finish()  # neither length nor chunks: the body ends with the connection
            return
        self._fail(exc or ConnectionLost("the upstream closed the connection"))

    # -- httptools callbacks --

    def on_message_begin(self) -> None:
        if not self.expecting:
            raise ConnectionLost("the upstream sent more than its answer (a wrong Content-Length, or an answer "
                                 "nobody asked for)")

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name)
        self.header_room -= size + len(value)
        if self.header_room < 0:
            raise self._oversized()
        if self.trailing:  # trailers: the head has gone to the client already; counted, then dropped
            self.trailer_lines += 1
            if self.trailer_lines > MAX_HEADERS:
                raise MalformedAnswer(f"the upstream sent more than {MAX_HEADERS} trailers")
            return
        response = self.response
        response.raw_headers.append((name, value))
        if size == 14 and name.lower() == b"content-length":
            value = value.strip()  # llhttp allows whitespace around the digits
            if value.isdigit():
                response.content_length = int(value)
        elif size == 10 and name.lower() == b"connection":
            self.said_connection = True

    def on_headers_complete(self) -> None:
        response = self.response
        if len(response.raw_headers) > MAX_HEADERS:
            raise MalformedAnswer(f"the upstream sent more than {MAX_HEADERS} headers")
        parser = self.parser
        status = parser.get_status_code()
        if status < 200:
            if status == 101:  # what follows is another protocol: never to be relayed, nor the connection reused
                raise MalformedAnswer(_SWITCHED)
            # 100 Continue, 103 Early Hints: not the answer. Their message ends next; the final head follows.
            # HTTP gives them no body, but llhttp reads one for a 1xx other than 100, 102 and 103 by its
            # Content-Length or Transfer-Encoding: an interim answer declaring one is refused, never merged
            # into the final answer's body nor taken as the start of the next answer.
            if _declares_body(response.raw_headers):
                raise MalformedAnswer(f"the upstream's interim answer ({status}) has a body, which HTTP does not "
                                      "allow")
            self.interim = True
            self.said_connection = False
            response.raw_headers = []
            response.content_length = None
            return
        response.status = status
        self.trailing = True
        self.header_room = MAX_HEADER_BYTES
        # should_keep_alive is false for a body that ends with the connection. HTTP/1.0 keep-alive is not trusted;
        # only a Connection header makes 1.0 keep-alive, so the version (~1 µs to ask) is checked only then.
        self.keep_alive = parser.should_keep_alive() and (
            not self.said_connection or parser.get_http_version() == "1.1")
        if not self.headers_ready.done():
            self.headers_ready.set_result(response)
        if self.head_request:
            self.expecting = False
            response._finish()
            raise _HeadAnswered()

    def on_body(self, body: bytes) -> None:
        self.since_body = 0
        self.response._feed(body)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        self.expecting = False
        self.response._finish()

    # -- used by the pool and the response --

    def send(self, head: bytes, body: bytes | None, head_request: bool = False) -> asyncio.Future:
        self.received = False
        self.said_connection = False
        self.trailing = False
        self.header_room = MAX_HEADER_BYTES
        self.trailer_lines = 0
        self.since_body = 0
        self.expecting = True
        self.head_request = head_request
        self.response = Response(self)
        self.headers_ready = self.loop.create_future()
        self.transport.write(head + body if body else head)
        return self.headers_ready

    def pause(self) -> None:
        if not self.paused and not self.closed:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and not self.closed:
            self.paused = False
            self.transport.resume_reading()

    def done(self, reusable: bool) -> None:
        self.response = None
        self.headers_ready = None
        if reusable and not self.closed and self.keep_alive and not self.expecting:
            self.idle_since = time.monotonic()
            self.resume()
            self.pool.put(self)
        else:
            self.close()

    def close(self) -> None:
        self._gone()
        if self.transport is not None:
            self.transport.close()

    def _gone(self) -> None:
        self.closed = True
        if self.counted:
            self.counted = False
            self.pool.slot_freed()

    def expire(self) -> None:
        """The first-byte deadline passed: give up on this answer and on the connection."""
        if self.headers_ready is not None and not self.headers_ready.done():
            self.headers_ready.set_exception(FirstByteTimeout())
        self.close()

    def _oversized(self) -> MalformedAnswer:
        part = "trailers" if self.trailing else "headers"
        if self.trailing and self.header_room >= 0:  # counted in data_received: a line that never ended
            part = "trailers (or chunk framing)"
        return MalformedAnswer(f"the upstream's {part} are larger than {MAX_HEADER_BYTES // 1024} KiB")

    def _fail(self, error: BaseException, even_if_complete: bool = False) -> None:
        if self.headers_ready is not None and not self.headers_ready.done():
            if self.reused and not self.received:
                error_before_head = StaleConnection(str(error))
            else:  # a MalformedAnswer stays one: the node's message says what was wrong
                error_before_head = error if isinstance(error, ConnectionLost) else ConnectionLost(str(error))
            self.headers_ready.set_exception(error_before_head)
        if self.response is not None:
            if even_if_complete:
                self.response._break(error)
            else:
                self.response._finish(error)


class Pool:
    """Keep-alive connections to one origin through one proxy (or none); at most `limit` open at once, and
    requests beyond that wait in line for one to come back or close."""

    def __init__(self, scheme: str, host: str, port: int, ssl_context: ssl.SSLContext | None,
                 limit: int = MAX_CONNECTIONS_PER_HOST, proxy: Proxy | None = None):
        self.host = host
        self.port = port
        self.ssl = ssl_context if scheme == "https" else None
        self.proxy = proxy
        self.limit = limit
        self.limited = False  # a deployment set the limit
        self.opened = 0  # connections open or being opened, busy or idle
        self.waiters: deque[asyncio.Future] = deque()  # FIFO; each gets a connection, or None: a free slot
        host_header = host if port in (80, 443) else f"{host}:{port}"
        if ":" in host and not host.startswith("["):
            host_header = f"[{host}]:{port}"
        self.host_line = b"host: " + host_header.encode()
        # Plain http through a proxy: absolute-form targets, and the proxy's credentials on every request.
        self.target_prefix = b""
        if proxy is not None and self.ssl is None:
            self.target_prefix = b"http://" + host_header.encode()
            if proxy.authorization:
                self.host_line += b"\r\n" + proxy.header_line()
        self.idle: deque[Connection] = deque()

    def put(self, connection: Connection) -> None:
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                connection.reused = True
                waiter.set_result(connection)
                return
        self.idle.append(connection)

    def slot_freed(self) -> None:
        """A connection closed (or failed to open): its slot goes to the first waiter, else back to the pool."""
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.opened -= 1

    def idle_connection(self) -> Connection | None:
        """A pooled connection still worth reusing, if there is one."""
        now = time.monotonic()
        while self.idle:
            connection = self.idle.pop()
            if not connection.closed and now - connection.idle_since < IDLE_SECONDS:
                connection.reused = True
                return connection
            connection.close()
        return None

    async def acquire(self, deadline: float, connect_timeout: float) -> Connection:
        """A new connection, or, with all `limit` in use, the first one given back (or slot freed) before
        `deadline`."""
        while True:
            connection = self.idle_connection()
            if connection is not None:
                return connection
            if self.opened < self.limit and not self.waiters:
                self.opened += 1
                return await self.connect(max(0.0, min(connect_timeout, deadline - time.monotonic())))
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            try:
                async with asyncio.timeout(deadline - time.monotonic()):
                    connection = await waiter
            except BaseException as exc:
                if waiter.done() and not waiter.cancelled():  # handed one just as this request gave up
                    given = waiter.result()
                    self.slot_freed() if given is None else self.put(given)
                else:
                    waiter.cancel()
                    try:
                        self.waiters.remove(waiter)
                    except ValueError:
                        pass  # already skipped over by a hand-out, as done
                if isinstance(exc, TimeoutError):
                    raise PoolTimeout(self.limit) from None
                raise
            if connection is None:  # a slot, passed on by a closed connection
                return await self.connect(max(0.0, min(connect_timeout, deadline - time.monotonic())))
            if not connection.closed:
                return connection

    async def connect(self, connect_timeout: float) -> Connection:
        """Open a connection in a slot already taken; the slot is given back if that fails."""
        loop = asyncio.get_running_loop()
        proxy = self.proxy
        try:
            async with asyncio.timeout(connect_timeout):
                if proxy is None:
                    _, connection = await loop.create_connection(
                        lambda: Connection(self, loop), self.host, self.port, ssl=self.ssl,
                        server_hostname=self.host if self.ssl else None)
                elif self.ssl is not None:  # TLS to the upstream inside a CONNECT tunnel
                    sock = await open_tunnel(loop, proxy, self.host, self.port)
                    _, connection = await loop.create_connection(
                        lambda: Connection(self, loop), sock=sock, ssl=self.ssl, server_hostname=self.host)
                else:
                    sock = await connect_to(loop, proxy)
                    _, connection = await loop.create_connection(lambda: Connection(self, loop), sock=sock)
        except TimeoutError:
            self.slot_freed()
            raise ConnectTimeout() from None
        except BaseException:
            self.slot_freed()
            raise
        if connection.closed:  # closed before this coroutine resumed
            self.slot_freed()
            raise ConnectionLost("the upstream closed the connection at once")
        connection.counted = True
        return connection

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


class Client:
    """Pools by origin and proxy; `request` returns once the status and headers have arrived.

    First-byte deadlines are checked by one sweeper every `SWEEP_SECONDS` instead of a timer per request:
    a timer costs more than the rest of the client's work on a fast answer.
    """

    SWEEP_SECONDS = 0.05

    def __init__(self, max_connections: int = MAX_CONNECTIONS_PER_HOST, proxies: Proxies | None = None):
        self.max_connections = max_connections
        self.proxies = Proxies() if proxies is None else proxies  # from the environment unless given
        self.pools: dict[tuple[str, str, int, Proxy | None], Pool] = {}
        self.targets: dict[str, tuple[Pool, bytes]] = {}
        # Verifies certificates against the system's CAs, or SSL_CERT_FILE / SSL_CERT_DIR when set.
        self.ssl_context = ssl.create_default_context()
        self.waiting: dict[Connection, float] = {}  # connection -> first-byte deadline
        self.reading: dict[Response, tuple[float, float]] = {}  # response -> (idle timeout, total deadline)
        self._sweeper: asyncio.Task | None = None

    def pool(self, url: str) -> tuple[Pool, bytes]:
        known = self.targets.get(url)
        if known is not None:
            return known
        if len(self.targets) > 10_000:  # URLs carry client-chosen model names (Cloudflare); keep this bounded
            self.targets.clear()
        self.targets[url] = self._parse(url)
        return self.targets[url]

    def limit(self, url: str, connections: int) -> None:
        """Cap the connections to `url`'s host; the smallest cap asked for a host wins."""
        pool = self.pool(url)[0]
        pool.limit = min(pool.limit, connections) if pool.limited else connections
        pool.limited = True

    def _parse(self, url: str) -> tuple[Pool, bytes]:
        parts = urlsplit(url)
        scheme = parts.scheme
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        proxy = self.proxies.select(scheme, host, port) if self.proxies.by_scheme else None
        key = (scheme, host, port, proxy)
        pool = self.pools.get(key)
        if pool is None:
            pool = self.pools[key] = Pool(scheme, host, port, self.ssl_context, self.max_connections, proxy)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return pool, pool.target_prefix + target.encode()

    async def request(self, method: str, url: str, headers: dict | list[bytes], body: bytes | None,
                      connect_timeout: float, first_byte_timeout: float, idle_timeout: float = 3600.0,
                      total_timeout: float = 86400.0) -> Response:
        pool, target = self.pool(url)
        head = _request_head(method.encode(), target, pool.host_line, headers, body)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        started = time.monotonic()
        deadline = started + first_byte_timeout
        head_request = method == "HEAD"
        for attempt in (1, 2):
            connection = pool.idle_connection() or await pool.acquire(deadline, connect_timeout)
            self.waiting[connection] = deadline
            try:
                response = await connection.send(head, body, head_request)
                if response.status == 407 and pool.target_prefix:
                    raise ProxyError(f"the proxy {pool.proxy.display} refused the request (407 Proxy "
                                     "Authentication Required); check the credentials in the proxy URL")
                if not response._complete:
                    self.reading[response] = (idle_timeout, started + total_timeout)
                return response
            except StaleConnection:
                # The upstream closed its idle connections (a restart, an idle timeout): drop them all and
                # try once on a fresh one; it never saw this request.
                pool.close()
                if attempt == 2:
                    raise ConnectionLost("the upstream closed the connection without answering") from None
            except BaseException:
                connection.close()  # a cancel or timeout mid-request: the upstream must see the connection go
                raise
            finally:
                self.waiting.pop(connection, None)
        raise AssertionError("unreachable")

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.SWEEP_SECONDS)
            now = time.monotonic()
            for connection in [c for c, deadline in self.waiting.items() if deadline <= now]:
                self.waiting.pop(connection, None)
                connection.expire()
            for response, (idle_timeout, deadline) in list(self.reading.items()):
                if response.finished:
                    del self.reading[response]
                elif now - response.last_activity > idle_timeout:
                    del self.reading[response]
                    response.expire(IdleTimeout(f"no data for {idle_timeout:g} s"))
                elif now > deadline:
                    del self.reading[response]
                    response.expire(TotalTimeout("the answer took too long"))

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()
        self.targets.clear()


def _declares_body(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether an answer's head gives it a body: a Transfer-Encoding, or a Content-Length other than 0."""
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"transfer-encoding" or (lowered == b"content-length" and value.strip() != b"0"):
            return True
    return False


def _request_head(method: bytes, target: bytes, host_line: bytes, headers: dict | list[bytes],
                  body: bytes | None) -> bytes:
    """The request line and headers. `headers` maps names to values, both str or both bytes, or is a list of
    header lines ready to send (b"name: value", a user agent included, none of the headers set here)."""
    lines = [method + b" " + target + b" HTTP/1.1", host_line]
    if headers.__class__ is list:
        lines += headers
    else:
        has_agent = False
        for name, value in headers.items():
            if name.__class__ is str:
                name, value = name.encode("latin-1"), value.encode("latin-1")
            lowered = name.lower()
            if lowered in _SET_HERE_OR_AGENT:
                if lowered != b"user-agent":
                    continue
                has_agent = True
            lines.append(name + b": " + value)
        if not has_agent:
            lines.append(USER_AGENT_LINE)
    if body is not None:
        lines.append(b"content-length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n"
