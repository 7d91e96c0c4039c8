"""The node's HTTP/1.1 server protocol on its own, under a real uvicorn on loopback, with small ASGI apps that
do what the node's handlers never do on purpose: a late first chunk, a header with a line break."""

import asyncio
import socket
import threading
import time

import pytest
import uvicorn

from llmrelay.asgi import DISCONNECT_EXTENSION
from llmrelay.server_protocol import HEAD_HOLD_SECONDS, HttpServerProtocol
from tests.support.node import free_port

LATE = 0.5  # seconds the app waits before a stream's first chunk: far longer than HEAD_HOLD_SECONDS
CALLBACKS: list[str] = []  # what the apps' disconnect callbacks saw


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/late-stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await asyncio.sleep(LATE)
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/watch":  # a stream that the client leaves after its first chunk
        left = asyncio.Event()
        scope["extensions"][DISCONNECT_EXTENSION](send, left.set)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        try:
            await asyncio.wait_for(left.wait(), 5)
            CALLBACKS.append("left mid-answer")
        except TimeoutError:
            CALLBACKS.append("never told")
    elif path == "/watch-complete":  # a whole answer, then the connection closes
        scope["extensions"][DISCONNECT_EXTENSION](send, lambda: CALLBACKS.append("told after a complete answer"))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": b"ok"})
    elif path in ("/task", "/task-then-linger"):  # which task answers; the second goes on after its answer
        body = str(id(asyncio.current_task())).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        if path == "/task-then-linger":
            await asyncio.sleep(LATE)
    elif path == "/version":
        body = scope["http_version"].encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
    elif path == "/split-header":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"x-note", b"a\r\nset-cookie: stolen=1"), (b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
    else:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


def start_server(timeout_keep_alive: int = 1) -> tuple[uvicorn.Server, threading.Thread, int]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, loop="uvloop", http=HttpServerProtocol,
                            lifespan="off", log_config=None, timeout_keep_alive=timeout_keep_alive)
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not instance.started:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    return instance, thread, port


@pytest.fixture(scope="module")
def server():
    instance, thread, port = start_server()
    yield port
    instance.should_exit = True
    thread.join(10)


def request(port: int, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    return sock


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        piece = sock.recv(65536)
        assert piece, f"closed before {marker!r}; got {data!r}"
        data += piece
    return data


def test_a_streams_head_goes_with_its_first_chunk(server):
    with request(server, "/stream") as sock:
        first = sock.recv(65536)  # the head and the first chunk were one write
        assert first.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"transfer-encoding: chunked\r\n" in first
        assert b"\r\n\r\n5\r\nfirst\r\n" in first


def test_a_streams_head_goes_alone_when_the_first_chunk_is_late(server):
    with request(server, "/late-stream") as sock:
        started = time.monotonic()
        head = read_until(sock, b"\r\n\r\n")
        head_at = time.monotonic() - started
        assert b"first" not in head  # the client knows the answer started, long before its first chunk
        body = read_until(sock, b"first")
        chunk_at = time.monotonic() - started
        assert chunk_at - head_at > LATE - HEAD_HOLD_SECONDS - 0.15, (head_at, chunk_at)
        while not body.endswith(b"0\r\n\r\n"):  # and the answer still ends properly
            body += sock.recv(65536)


def test_a_header_with_a_line_break_is_never_sent(server):
    with request(server, "/split-header") as sock:
        answer = b""
        while piece := sock.recv(65536):
            answer += piece
    assert answer.startswith(b"HTTP/1.1 500 ")
    assert b"stolen" not in answer and b"set-cookie" not in answer.lower()


def test_an_idle_keep_alive_connection_is_closed_after_the_timeout(server):
    with request(server, "/") as sock:
        assert read_until(sock, b"ok").startswith(b"HTTP/1.1 200 OK\r\n")
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")  # kept alive: a second request is answered
        assert read_until(sock, b"ok").startswith(b"HTTP/1.1 200 OK\r\n")
        idle_since = time.monotonic()
        sock.settimeout(10)
        assert sock.recv(65536) == b""  # closed by the server, not by our timeout (that would raise)
        # uvicorn's timeout_keep_alive (1 s here), checked by a sweeper once a second
        assert 0.9 < time.monotonic() - idle_since < 4


def test_an_app_is_told_at_once_when_the_client_leaves_mid_answer(server):
    CALLBACKS.clear()
    with request(server, "/watch") as sock:
        read_until(sock, b"first")
    deadline = time.monotonic() + 5
    while not CALLBACKS and time.monotonic() < deadline:
        time.sleep(0.01)
    assert CALLBACKS == ["left mid-answer"]


def test_a_connection_closed_after_a_complete_answer_is_not_a_client_leaving(server):
    CALLBACKS.clear()
    with request(server, "/watch-complete") as sock:
        answer = b""
        while piece := sock.recv(65536):  # the server closes: connection: close
            answer += piece
    assert answer.endswith(b"\r\n\r\nok")
    time.sleep(0.2)
    assert CALLBACKS == []


def ask(sock: socket.socket, path: str) -> bytes:
    """One more request on a kept-alive connection; the body of its answer."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    head = read_until(sock, b"\r\n\r\n")
    head, _, body = head.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return body


def test_a_kept_alive_connections_requests_take_turns_on_one_task(server):
    with socket.create_connection(("127.0.0.1", server), timeout=5) as sock:
        first, second, third = ask(sock, "/task"), ask(sock, "/task"), ask(sock, "/task")
    assert first == second == third


def test_a_request_is_not_held_up_by_the_previous_ones_work_after_its_answer(server):
    with socket.create_connection(("127.0.0.1", server), timeout=5) as sock:
        lingering = ask(sock, "/task-then-linger")  # its app goes on for LATE seconds after answering
        started = time.monotonic()
        assert ask(sock, "/task") != lingering  # answered at once, by a task of its own
        assert time.monotonic() - started < LATE / 2
        time.sleep(LATE)
        assert ask(sock, "/") == b"ok"  # and the connection goes on, whichever task is free


def test_shutdown_is_prompt_with_an_idle_kept_alive_connection():
    instance, thread, port = start_server(timeout_keep_alive=30)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        ask(sock, "/")  # the connection's task now waits for a next request that never comes
        instance.should_exit = True
        stopping = time.monotonic()
        thread.join(10)
        assert not thread.is_alive(), "the server waited for the idle connection's task"
        assert time.monotonic() - stopping < 3
        assert sock.recv(65536) == b""  # the server closed the idle connection


@pytest.mark.parametrize("version, connection, kept_alive", [
    ("1.1", None, True), ("1.1", "keep-alive", True), ("1.1", "close", False), ("1.0", None, False),
    ("1.0", "keep-alive", False), ("1.0", "close", False), ("2.0", "keep-alive", False)])
def test_the_scope_names_the_requests_http_version(server, version, connection, kept_alive):
    extra = f"Connection: {connection}\r\n" if connection else ""
    with socket.create_connection(("127.0.0.1", server), timeout=5) as sock:
        sock.sendall(f"GET /version HTTP/{version}\r\nHost: localhost\r\n{extra}\r\n".encode())
        answer = read_until(sock, b"\r\n\r\n" + version.encode())
        assert answer.endswith(b"\r\n\r\n" + version.encode())
        if kept_alive:
            assert ask(sock, "/version") == b"1.1"
        else:
            assert b"connection: close\r\n" in answer
            assert sock.recv(65536) == b""


def test_an_http_1_0_client_gets_a_stream_without_chunks_ended_by_the_close(server):
    with socket.create_connection(("127.0.0.1", server), timeout=5) as sock:
        sock.sendall(b"GET /stream HTTP/1.0\r\nHost: localhost\r\n\r\n")
        answer = b""
        while piece := sock.recv(65536):  # the server closes: that is where the body ends
            answer += piece
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert b"connection: close" in head
    assert body == b"first"
