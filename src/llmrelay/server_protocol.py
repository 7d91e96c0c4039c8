"""The node's HTTP/1.1 server protocol: httptools' parser, ASGI to the app, run by uvicorn.

uvicorn keeps what it does well (sockets, workers, signals, lifespan, graceful shutdown); this replaces its
per-request cycle (an asyncio.Event, a keep-alive timer and regular expressions per request, and a separate
write for the head and the body), which cost a large share of a proxied request (bench/README.md). Here:

- the response head waits for the first body bytes and goes out in the same write, so a small answer is one
  write and one packet, and a stream's first chunk travels with its head (held at most HEAD_HOLD_SECONDS);
- keep-alive, header, body and write deadlines are checked by one sweeper per process, not a timer per request;
- a kept-alive connection's requests take turns on one task rather than a new task each;
- the app is called once a request's whole body is in (the node reads bodies whole anyway), so a client that
  sends headers and no body holds no capacity slot and no task; a body declared larger than `max_body_bytes`
  (or a chunked one growing past it) goes to the app at once, which refuses it; and once the bodies a server's
  connections hold for requests not yet given to the app pass `max_buffered_bytes` in total, a request goes
  to the app as it arrives (its key checked, its capacity waited for) and the app reads the body itself;
- deadlines no client can dodge: headers within `header_timeout` seconds and `max_header_bytes` bytes (431),
  however they arrive (not counting time the server is not reading, for a pipelined request); the body within
  `body_timeout` seconds of the headers, in total (408); and an answer may wait on its client (its writes
  paused, the buffers full) for `write_timeout` seconds in total, counting every pause but those the client
  ended by reading at least `min_drain_rate` bytes a second: a client that reads nothing, or a little now and
  then, is cut off once one answer has waited that long, which cancels its request.

It serves plain HTTP/1.1 with keep-alive, pipelining (answered in order, a malformed request after valid ones
answered 400 after theirs; at most MAX_PIPELINED requests wait behind the one being answered, and one more is
refused with 429 after their answers, closing the connection), `Expect: 100-continue` (a request refused
without its body, which the client then does not send, closes the connection after its answer) and flow
control both ways. Upgrades (WebSocket, h2c) are refused with 501: the node does not speak them. Trailers of
chunked bodies are dropped, never merged into the request's headers. A client that leaves mid-answer is
reported as ASGI's `http.disconnect` and, to an app that registered one through the scope's
DISCONNECT_EXTENSION, by a callback (no task per request waiting on `receive`). Through the scope's
DIRECT_SEND_EXTENSION, an app may send its response by plain calls instead of ASGI messages.
"""

import asyncio
import logging
import time
import weakref
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import unquote

import httptools

from llmrelay.asgi import DIRECT_SEND_EXTENSION, DISCONNECT_EXTENSION
from llmrelay.sockets import no_delay

log = logging.getLogger("llmrelay")

HEAD_HOLD_SECONDS = 0.05  # a streamed answer's head waits this long at most for its first chunk
MAX_PIPELINED = 16  # requests parsed ahead, waiting behind the one being answered; one more is refused
_BODY_HIGH_WATER = 64 * 1024  # unread bytes of a body given to the app early that pause reading from the client
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_TERMINATOR = b"0\r\n\r\n"
_DISCONNECT = {"type": "http.disconnect"}
_ASGI = {"version": "3.0", "spec_version": "2.3"}  # the same for every request: one dict, not one each


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase)


_STATUS_LINES = {status: _status_line(status) for status in range(100, 600)}


def _error_response(status: int, type_: str, message: str) -> bytes:
    body = b'{"error": {"type": "%s", "message": "%s"}}' % (type_.encode(), message.encode())
    return (_STATUS_LINES[status] + b"content-type: application/json\r\nconnection: close\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


_TOO_LARGE = _error_response(431, "request_header_too_large", "the request headers are larger than allowed")
_MALFORMED = _error_response(400, "bad_request", "the request is not valid HTTP/1.1")
_FAILED = _error_response(500, "internal_error", "the node failed on this request; see its log for details")
_PIPELINE_FULL = _error_response(429, "too_many_pipelined_requests", f"more than {MAX_PIPELINED} requests were "
                                 "sent ahead of their answers; wait for answers before sending more")
_UPGRADE = _error_response(501, "upgrade_not_supported", "the node does not speak WebSocket, HTTP/2 or other "
                           "upgrades; send plain HTTP/1.1 requests")


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request that has just been refused."""


@dataclass(frozen=True, slots=True)
class ServerLimits:
    header_timeout: float = 10.0  # seconds from a request's first byte (or the connection's start) to its last header
    max_header_bytes: int = 64 * 1024
    body_timeout: float = 30.0  # seconds from a request's last header to the last byte of its body, in total
    max_body_bytes: int = 10 * 1024 * 1024  # a larger body goes to the app at once, unread, for it to refuse
    write_timeout: float = 60.0  # seconds an answer may wait on its client (writes paused), in total, before a cut-off
    min_drain_rate: int = 16 * 1024  # bytes a second: a pause the client ends reading faster is not counted
    max_buffered_bytes: int = 64 * 1024 * 1024  # bodies held for requests not yet given to the app, per server

    @property
    def sweep_seconds(self) -> float:
        return min(1.0, self.header_timeout / 4, self.body_timeout / 4, self.write_timeout / 4)


class _Buffered:
    """Bytes of request bodies a server's connections hold for requests not yet given to the app."""

    __slots__ = ("held", "limit")

    def __init__(self, limit: int):
        self.held = 0
        self.limit = limit


class HttpServerProtocol(asyncio.Protocol):
    """One client connection. uvicorn creates it with its config and server state; server.py binds `limits`
    (functools.partial) from the node's settings."""

    # One sweeper per server (uvicorn's server_state), walking the connections uvicorn already keeps.
    _sweepers: "weakref.WeakKeyDictionary[object, asyncio.Task]" = weakref.WeakKeyDictionary()
    # And one count of the bodies its connections hold before dispatch.
    _budgets: "weakref.WeakKeyDictionary[object, _Buffered]" = weakref.WeakKeyDictionary()

    def __init__(self, config, server_state, app_state=None, _loop=None, limits: ServerLimits = ServerLimits()):
        self.limits = limits
        self.header_timeout = limits.header_timeout
        self.max_header_bytes = limits.max_header_bytes
        self.body_timeout = limits.body_timeout
        self.max_body_bytes = limits.max_body_bytes
        self.write_timeout = limits.write_timeout
        self.min_drain_rate = limits.min_drain_rate
        if not config.loaded:
            config.load()
        self.app = config.loaded_app
        self.keep_alive_timeout = config.timeout_keep_alive
        self.server_state = server_state
        self.loop = _loop or asyncio.get_event_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.server = self.client = None
        self.scheme = "http"
        self.parsing: Cycle | None = None  # the request whose bytes are arriving
        self.active: Cycle | None = None  # the request being answered
        self.waiting: deque[Cycle] = deque()  # pipelined requests, answered in order
        self.next_cycle: asyncio.Future | None = None  # the idle task awaits the next request through it
        self.reading_paused = False
        self.write_paused: asyncio.Future | None = None
        self.closed = False
        self.refusing = False  # a refusal is sent or queued: nothing more is read
        # deadlines, checked by the sweeper: headers started at, idle (between requests) since, writes paused
        # since (a body's deadline is its cycle's `body_since`)
        self.headers_since: float | None = None
        self.idle_since: float | None = None
        self.write_paused_at = 0.0
        self.write_waited = 0.0  # seconds the answer in progress waited on a slow client before its latest pause
        self.write_paused_size = 0  # bytes buffered when writes were paused
        self.buffered: _Buffered | None = None  # the server's, shared by its connections
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._expect_continue = False
        self._connection_header = False  # the request has a Connection (or Proxy-Connection) header
        # The head's size: bytes of the reads that held part of it (an upper bound), of the reads that were all
        # head (a lower bound), and whether a head completed in this read must be measured exactly.
        self._heads_done = 0
        self._head_upper = 0
        self._head_seen = 0
        self._check_size = False

    # -- asyncio protocol --

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.server_state.connections.add(self)
        no_delay(transport)
        self.server = _address(transport.get_extra_info("sockname"))
        self.client = _address(transport.get_extra_info("peername"))
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        self.headers_since = time.monotonic()  # a connection that never sends a request is cut off too
        buffered = self._budgets.get(self.server_state)
        if buffered is None:
            buffered = self._budgets[self.server_state] = _Buffered(self.limits.max_buffered_bytes)
        self.buffered = buffered
        sweeper = self._sweepers.get(self.server_state)
        if sweeper is None or sweeper.done():
            self._sweepers[self.server_state] = self.loop.create_task(
                self._sweep(self.server_state.connections, self.limits.sweep_seconds))

    def data_received(self, data: bytes) -> None:
        in_head = self.parsing is None  # this read starts within a request's head, or between requests
        heads_done = self._heads_done
        self._check_size = self._head_upper + len(data) > self.max_header_bytes
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(_UPGRADE)  # CONNECT: answered, then refused (an Upgrade header is refused before)
            return
        except httptools.HttpParserError:
            self._refuse(_MALFORMED)  # unless a callback refused the request already
            return
        parsing = self.parsing
        if parsing is not None:
            self._body_pending(parsing)
        elif self.headers_since is not None:  # still in a request's head
            self._head_pending(len(data), in_head and self._heads_done == heads_done)

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.server_state.connections.discard(self)
        for cycle in (self.active, *self.waiting):
            if cycle is not None and cycle.__class__ is Cycle:  # not a queued refusal
                cycle.disconnect()
                cycle.release()
        parsing, self.parsing = self.parsing, None
        if parsing is not None:
            parsing.release()
        self.waiting.clear()
        self._resume_writers()
        waiting_for, self.next_cycle = self.next_cycle, None
        if waiting_for is not None and not waiting_for.done():
            waiting_for.set_result(None)  # no more requests: the task waiting for one ends

    def eof_received(self) -> None:
        pass  # the client may half-close after its request and still read the answer

    def pause_writing(self) -> None:
        if self.write_paused is None:
            self.write_paused = self.loop.create_future()
            self.write_paused_at = time.monotonic()
            self.write_paused_size = self.transport.get_write_buffer_size()

    def resume_writing(self) -> None:
        self._resume_writers()

    # -- httptools callbacks --

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._expect_continue = False
        self._connection_header = False
        self.idle_since = None
        if self.headers_since is None:
            self.headers_since = time.monotonic()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.parsing is not None:
            return  # a trailer after a chunked body: never one of the request's headers
        name = name.lower()
        if name == b"expect":
            self._expect_continue = value.lower() == b"100-continue"
        elif name == b"connection" or name == b"proxy-connection":  # llhttp reads both
            self._connection_header = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.headers_since = None
        self._heads_done += 1
        if self._check_size and self._head_size() > self.max_header_bytes:
            self._refuse(_TOO_LARGE)
            raise _Refused
        if self._head_upper:
            self._head_upper = self._head_seen = 0
        parser = self.parser
        url = self._url
        if url[:1] == b"/":
            raw_path, _, query = url.partition(b"?")
        else:  # absolute form, as a client talking to a proxy may send
            parsed = httptools.parse_url(url)
            raw_path, query = parsed.path or b"/", parsed.query or b""
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        keep_alive = parser.should_keep_alive()
        if keep_alive and not self._connection_header:
            # llhttp accepts HTTP/0.9, 1.0, 1.1 and 2.0 and keeps only 1.1 alive without a Connection header, so
            # the version is known without asking the parser (which formats a string each time).
            version = "1.1"
        else:
            if parser.should_upgrade():  # the bytes after this request would be another protocol's
                self._refuse(_UPGRADE)
                raise _Refused
            version = parser.get_http_version()
            keep_alive = keep_alive and version == "1.1"
        scope = {"type": "http", "asgi": _ASGI, "http_version": version,
                 "method": parser.get_method().decode("ascii"), "scheme": self.scheme, "path": path,
                 "raw_path": raw_path, "query_string": query, "root_path": "", "headers": self._headers,
                 "server": self.server, "client": self.client}
        cycle = Cycle(self, scope, keep_alive, self._expect_continue)
        scope["extensions"] = _EXTENSIONS
        self.parsing = cycle  # the app gets it once its body is in (on_message_complete)

    def on_body(self, body: bytes) -> None:
        cycle = self.parsing
        if cycle.dispatched:
            self._body_for_app(cycle, body)
            return
        size = len(body)
        cycle.body.append(body)
        cycle.buffered += size
        cycle.held += size
        buffered = self.buffered
        buffered.held += size
        if cycle.buffered > self.max_body_bytes or buffered.held > buffered.limit:
            # a chunked body grown too large (the app refuses it), or the server holding all it may
            self._dispatch(cycle)
            if self.refusing:
                raise _Refused

    def on_message_complete(self) -> None:
        cycle = self.parsing
        self.parsing = None
        cycle.more_body = False
        if not cycle.dispatched:  # _dispatch, inlined: this is every request's way
            cycle.dispatched = True
            if self.active is None:
                self._start(cycle)
            elif len(self.waiting) < MAX_PIPELINED:
                self.waiting.append(cycle)
                self.pause_reading()
            else:
                cycle.release()
                self._refuse(_PIPELINE_FULL)
                raise _Refused
        elif cycle.done:  # the rest of a body refused early has been read: the connection goes on
            self.idle_since = time.monotonic()
        else:
            cycle.wake()

    def _body_for_app(self, cycle: "Cycle", body: bytes) -> None:
        """More of a body given to the app before it was all in; dropped once the app has answered."""
        if cycle.done:
            return
        cycle.body.append(body)
        cycle.buffered += len(body)
        if cycle.buffered > _BODY_HIGH_WATER:
            self.pause_reading()
        cycle.wake()

    def _body_pending(self, cycle: "Cycle") -> None:
        """A read ended within `cycle`'s body (a body that came whole with its head never gets here). A body
        declared too large goes to the app at once, to be refused unread; a client waiting for `100 Continue`
        gets it once its request is the next to be answered; the body's deadline runs from then on."""
        if cycle.body_since is not None:
            return
        if not cycle.dispatched and (_declared_length(cycle.scope["headers"]) > self.max_body_bytes
                                     or self.buffered.held > self.buffered.limit):
            self._dispatch(cycle)  # to be refused unread, or read by the app: the server holds all it may
            if self.refusing:
                return
        elif cycle.continue_expected and not cycle.buffered:
            if self.active is not None:
                return  # the client waits for us: no deadline until answered() comes back here
            cycle.continue_expected = False
            self.write(_CONTINUE)
        cycle.body_since = time.monotonic()

    def _head_pending(self, size: int, all_head: bool) -> None:
        """A read of `size` bytes ended within a request's head: refuse the head once it is surely too large.
        A read that began within it and completed no head was all head; one that began in an earlier request
        counts from the parser's reports (its URL and complete headers) until the next read."""
        self._head_upper += size
        if all_head:
            self._head_seen += size
        limit = self.max_header_bytes
        if self._head_upper > limit and (self._head_seen > limit or self._head_size() > limit):
            self._refuse(_TOO_LARGE)

    def _head_size(self) -> int:
        return len(self._url) + sum(len(name) + len(value) + 4 for name, value in self._headers)

    # -- used by the cycles --

    def _dispatch(self, cycle: "Cycle") -> None:
        """`cycle` goes to the app: now, or after the requests before it are answered."""
        if self.active is None:
            cycle.dispatched = True
            self._start(cycle)
        elif len(self.waiting) < MAX_PIPELINED:
            cycle.dispatched = True
            self.waiting.append(cycle)
            self.pause_reading()  # one pipelined request at a time is enough to hold
        else:
            cycle.release()
            self._refuse(_PIPELINE_FULL)

    def _start(self, cycle: "Cycle") -> None:
        self.active = cycle
        waiting_for = self.next_cycle
        if waiting_for is not None and not waiting_for.done():
            self.next_cycle = None
            waiting_for.set_result(cycle)
            return
        task = self.loop.create_task(self._serve(cycle))
        tasks = self.server_state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _serve(self, cycle: "Cycle | None") -> None:
        """Run `cycle`, then the connection's next requests as they come while this task is free for them: a
        keep-alive connection's requests take turns on one task instead of a new task each (creating a task
        costs more than handing a request to a waiting one). A request that comes
        while the task still finishes the previous one (recording it) gets a task of its own. Requests that
        share a task share its context variables: the node's app sets none. (The app is called here rather than
        in a method of the cycle: a coroutine fewer on the way of every request.)"""
        app = self.app
        while cycle is not None:
            try:
                await app(cycle.scope, cycle.receive, cycle.send)
            except BaseException as exc:  # noqa: BLE001 - whatever the app raised, the client gets an answer
                cycle.failed(exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                cycle.check_complete()
            if self.closed or self.next_cycle is not None:
                return
            waiting_for = self.next_cycle = self.loop.create_future()
            try:
                cycle = await waiting_for
            finally:
                if self.next_cycle is waiting_for:
                    self.next_cycle = None

    def answered(self, cycle: "Cycle") -> None:
        """`cycle`'s response is complete: close, or go on with the next request on this connection."""
        self.server_state.total_requests += 1
        self.active = None
        if cycle.held:
            cycle.release()  # a body the app did not read
        if self.write_waited or self.write_paused is not None:  # the next answer's wait starts from nothing
            self.write_waited = 0.0
            self.write_paused_at = time.monotonic()
        if not cycle.keep_alive:
            self.close()
            return
        if self.waiting:
            self.resume_reading()
            following = self.waiting.popleft()
            if following.__class__ is bytes:  # a refusal, sent once the answers before it were
                self.write(following)
                self.close()
            else:
                self._start(following)
        else:
            parsing = self.parsing
            if parsing is None:
                if self.headers_since is None:  # else the next head, read with this request, is under way
                    self.idle_since = time.monotonic()
            else:  # a body still arriving: the next request's (or the rest of one refused early)
                self._body_pending(parsing)
            self.resume_reading()

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    async def drain(self) -> None:
        while self.write_paused is not None and not self.closed:
            await asyncio.shield(self.write_paused)

    def pause_reading(self) -> None:
        if not self.reading_paused and not self.closed:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and not self.closed and not self.refusing:
            self.reading_paused = False
            self.transport.resume_reading()
            parsing = self.parsing
            if parsing is not None and parsing.body_since is not None:
                parsing.body_since = time.monotonic()  # the time we did not read is not the client's
            elif self.headers_since is not None:
                self.headers_since = time.monotonic()  # a pipelined head's, nor here

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        """Close at once, dropping what is not sent (close() would wait for a client that does not read)."""
        self.closed = True
        self.transport.abort()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: close when idle, else once the answer in progress is done."""
        if self.active is None:
            self.close()
        else:
            self.active.keep_alive = False
            for cycle in self.waiting:
                if cycle.__class__ is Cycle:
                    cycle.release()
            self.waiting.clear()

    def _refuse(self, response: bytes) -> None:
        """Answer `response` to the request being read, and close: at once, or after the answers to the requests
        before it. Nothing more is read."""
        if self.refusing:
            return
        self.refusing = True
        parsing, self.parsing = self.parsing, None
        if parsing is not None:
            parsing.release()
        if parsing is not None and parsing.dispatched:  # the app has this request: its answer is the only one
            self.close()
        elif self.active is None:
            self.write(response)
            self.close()
        else:
            self.waiting.append(response)
            self.pause_reading()

    def _resume_writers(self) -> None:
        paused, self.write_paused = self.write_paused, None
        if paused is not None:
            # Counted, not reset, unless the client read fast enough to end it: one that reads a little now and
            # then does not restart the clock.
            if not self.closed:
                waited = time.monotonic() - self.write_paused_at
                drained = self.write_paused_size - self.transport.get_write_buffer_size()
                if drained < waited * self.min_drain_rate:
                    self.write_waited += waited
            if not paused.done():
                paused.set_result(None)

    @staticmethod
    async def _sweep(connections: set, interval: float) -> None:
        """Enforce every connection's deadlines: headers, body, keep-alive idleness, and an answer left unread."""
        while connections:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for connection in list(connections):
                connection._check_deadlines(now)

    def _check_deadlines(self, now: float) -> None:
        waited = self.write_waited
        if self.write_paused is not None:
            waited += now - self.write_paused_at
        if waited > self.write_timeout:  # this answer has waited on its client that long, in total
            self.abort()  # its request's handler is cancelled through connection_lost
        elif (self.headers_since is not None and not self.reading_paused
              and now - self.headers_since > self.header_timeout):  # paused: a pipelined head waits for us
            self.close()
        elif self.idle_since is not None and now - self.idle_since > self.keep_alive_timeout:
            self.close()
        elif not self.reading_paused:
            parsing = self.parsing
            if parsing is not None and parsing.body_since is not None and now - parsing.body_since > self.body_timeout:
                self._refuse(_error_response(
                    408, "request_timeout", f"the request body did not arrive within {self.body_timeout:g} s; "
                    "send it faster, or raise LLMRELAY_BODY_TIMEOUT"))


class Cycle:
    """One request and its response, as the ASGI app sees them through `receive` and `send`."""

    __slots__ = ("connection", "scope", "keep_alive", "body", "buffered", "more_body", "delivered", "waiter",
                 "continue_expected", "head", "hold", "chunked", "started", "done", "disconnected", "on_disconnect",
                 "dispatched", "body_since", "held")

    def __init__(self, connection: HttpServerProtocol, scope: dict, keep_alive: bool, continue_expected: bool):
        self.connection = connection
        self.scope = scope
        self.keep_alive = keep_alive
        self.body: list[bytes] = []
        self.buffered = 0
        self.more_body = True
        self.delivered = False  # the last piece of the body has been handed to the app
        self.waiter: asyncio.Future | None = None
        self.continue_expected = continue_expected
        self.head: bytes | None = None  # the response head, until the first body bytes go with it
        self.hold: asyncio.Handle | None = None  # what sends the head alone if the first chunk is late
        self.chunked = False
        self.started = False
        self.done = False
        self.disconnected = False
        self.on_disconnect = None  # the app's callback for a client that leaves before the answer is complete
        self.dispatched = False  # handed to the app (or waiting its turn for it)
        self.body_since: float | None = None  # the first read that ended within the body
        self.held = 0  # bytes of the body counted in the server's `max_buffered_bytes`, until the app takes them

    def release(self) -> None:
        """The body's bytes are no longer held for the app (it took them, or they were dropped)."""
        if self.held:
            self.connection.buffered.held -= self.held
            self.held = 0

    def failed(self, exc: BaseException) -> None:
        """The app raised `exc`: a 500 if nothing was sent yet, and the connection closes."""
        if not isinstance(exc, asyncio.CancelledError):
            log.error("the app failed on %s %s", self.scope["method"], self.scope["path"], exc_info=exc)
        if not self.started and not self.disconnected:
            self.connection.write(_FAILED)
        self.connection.close()

    def check_complete(self) -> None:
        """The app returned: an answer it left unfinished is ended with a 500 or by closing the connection."""
        if not self.done and not self.disconnected:
            log.error("the app did not finish its answer to %s %s", self.scope["method"], self.scope["path"])
            if not self.started:
                self.connection.write(_FAILED)
            self.connection.close()

    # -- fed by the connection --

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def disconnect(self) -> None:
        self.disconnected = True
        if self.hold is not None:
            self.hold.cancel()
        self.wake()
        callback, self.on_disconnect = self.on_disconnect, None
        if callback is not None and not self.done:
            callback()

    def call_on_disconnect(self, callback) -> None:
        """`callback()` once if the client goes away before the answer is complete (the app still gets
        `http.disconnect` from `receive` too)."""
        if self.disconnected and not self.done:
            callback()
        else:
            self.on_disconnect = callback

    # -- ASGI --

    async def receive(self) -> dict:
        if self.continue_expected and self.more_body and not self.started:  # a body given to the app early
            self.continue_expected = False
            self.connection.write(_CONTINUE)
        while not self.disconnected and not self.done and not self.body and (self.more_body or self.delivered):
            self.connection.resume_reading()
            self.waiter = self.connection.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        if self.disconnected or self.done:
            return _DISCONNECT
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body = []
        self.buffered = 0
        if self.held:
            self.release()
        self.delivered = not self.more_body
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    async def send(self, message: dict) -> None:
        connection = self.connection
        if connection.write_paused is not None:
            await connection.drain()
        if not self.started:
            if message["type"] != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {message['type']}")
            self.start_response(message["status"], message.get("headers", ()))
            return
        if self.done or message["type"] != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {message['type']} after the response")
        self.send_body(message.get("body", b""), message.get("more_body", False))

    # -- DIRECT_SEND_EXTENSION: the same as `receive` and `send`, without a message dict or a coroutine --

    def whole_body(self) -> bytes | None:
        """The request's whole body if all of it has arrived and none of it was taken; else None."""
        if self.more_body or self.delivered or self.disconnected or self.done:
            return None
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body = []
        self.buffered = 0
        if self.held:
            self.release()
        self.delivered = True
        self.continue_expected = False  # the client sent its body without waiting for 100 Continue
        return body

    def start_response(self, status: int, headers) -> None:
        """`http.response.start` (nothing is written yet: the head waits for the first body bytes)."""
        if self.disconnected:
            return
        if self.started:
            raise RuntimeError("the response has already started")
        self._start(status, headers)

    def send_body(self, body: bytes, more: bool) -> bool:
        """`http.response.body`; False, sending nothing, while the client is not reading (the caller then
        waits through `send`)."""
        connection = self.connection
        if connection.write_paused is not None and not connection.closed:
            return False
        if self.disconnected:
            return True
        if self.done or not self.started:
            raise RuntimeError("a response body must come after the response's start and before its end")
        if self.scope["method"] == "HEAD":
            body = b""
        if self.chunked:
            data = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
            if not more:
                data += _TERMINATOR
        else:
            data = body
        if self.head is not None:
            data = self.head + data
            self.head = None
            if self.hold is not None:
                self.hold.cancel()
                self.hold = None
        if data:
            connection.write(data)
        if not more:
            self.done = True
            self.on_disconnect = None
            self.wake()
            connection.answered(self)
        return True

    def _start(self, status: int, headers) -> None:
        if self.continue_expected:
            self.continue_expected = False
            if self.more_body:  # answered before its body, which the client (never told to go on) may not send:
                self.keep_alive = False  # what it sends next cannot be told from that body
        lines = []
        framed = False
        for name, value in headers:
            lowered = name.lower()
            if lowered in _FRAMING:
                if lowered == b"content-length":
                    framed = True
                elif lowered == b"transfer-encoding":
                    framed = self.chunked = value.lower() == b"chunked"
                elif value.lower().find(b"close") >= 0:  # connection: close
                    self.keep_alive = False
            lines.append(name + b": " + value + b"\r\n")
        streamed = self.chunked
        if not framed and self.scope["method"] != "HEAD" and status not in (204, 304):
            streamed = True
            if self.scope["http_version"] == "1.1":
                self.chunked = True
                lines.append(b"transfer-encoding: chunked\r\n")
            else:  # an older client knows no chunks: the body ends when the connection closes
                self.keep_alive = False
        if not self.keep_alive:
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        fields = b"".join(lines)
        # Every line ends in the one CR LF it was given: a line break inside a name or value would split the
        # head (response splitting). Counted over all lines rather than tested per header: on bytes, `in`
        # first tries its operand as an integer and raises and swallows a TypeError (CPython 3.11).
        if fields.count(b"\n") != len(lines) or fields.count(b"\r") != len(lines):
            raise RuntimeError("a response header has a line break")
        self.head = (_STATUS_LINES.get(status) or _status_line(status)) + _default_lines(
            self.connection.server_state) + fields
        self.started = True  # only now: a head that failed above leaves the 500 to be sent instead
        if streamed:  # its head goes with the first chunk, or alone if that is slow to come
            # A timer only if the app yields before sending that chunk: a relayed stream whose first chunk
            # came with the upstream's head sends it at once, and a timer costs more than this callback.
            self.hold = self.connection.loop.call_soon(self._hold_head)

    def _hold_head(self) -> None:
        self.hold = None
        if self.head is not None and not self.disconnected:
            self.hold = self.connection.loop.call_later(HEAD_HOLD_SECONDS, self._flush_head)

    def _flush_head(self) -> None:
        self.hold = None
        if self.head is not None and not self.disconnected:
            self.connection.write(self.head)
            self.head = None


def _call_on_disconnect(send, callback) -> None:
    """DISCONNECT_EXTENSION: `callback()` once if the client of the request answered through `send` leaves
    before its answer is complete. One function for every request, finding it by its `send`: a bound method
    per request in the scope would make a reference cycle, freed only by the garbage collector."""
    cycle = getattr(send, "__self__", None)
    if isinstance(cycle, Cycle):
        cycle.call_on_disconnect(callback)


_EXTENSIONS = {DISCONNECT_EXTENSION: _call_on_disconnect, DIRECT_SEND_EXTENSION: {}}
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})  # headers the server acts on
_defaults_of: list | None = None  # uvicorn's default headers (a new list each second: the date changes)
_default_bytes = b""


def _default_lines(server_state) -> bytes:
    """uvicorn's default headers (Date) as header lines, formatted once per list uvicorn makes."""
    global _defaults_of, _default_bytes
    defaults = server_state.default_headers
    if defaults is not _defaults_of:
        _defaults_of = defaults
        _default_bytes = b"".join(name + b": " + value + b"\r\n" for name, value in defaults)
    return _default_bytes


def _declared_length(headers) -> int:
    for name, value in headers:
        if name == b"content-length":
            return int(value)  # llhttp has checked it is a number
    return 0


def _address(address):
    if isinstance(address, tuple) and len(address) >= 2:
        return str(address[0]), int(address[1])
    return None
