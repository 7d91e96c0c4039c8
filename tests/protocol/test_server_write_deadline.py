"""The write deadline against a client that reads a little now and then, on HttpServerProtocol under a real
uvicorn on loopback (limits the node's settings do not reach: a drain rate no loopback client falls below
by accident): each such pause ends within the deadline, but the answer's waiting is counted in total."""

import asyncio
import functools
import socket
import threading
import time

import pytest
import uvicorn

from llmrelay.asgi import DISCONNECT_EXTENSION
from llmrelay.server_protocol import HttpServerProtocol, ServerLimits
from tests.support.in_process import serving
from tests.support.node import free_port

CHUNK = b"x" * 16 * 1024
ended = threading.Event()  # the endless answer's client went


async def endless(scope, receive, send):
    """Streams until its client goes (told by the server's DISCONNECT_EXTENSION callback)."""
    if scope["type"] != "http":
        return
    scope["extensions"][DISCONNECT_EXTENSION](send, ended.set)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    while not ended.is_set():
        await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
        await asyncio.sleep(0)


@pytest.fixture(scope="module")
def port():
    port = free_port()
    limits = ServerLimits(write_timeout=1.5, min_drain_rate=1024 * 1024)
    config = uvicorn.Config(endless, host="127.0.0.1", port=port, loop="uvloop", lifespan="off", log_config=None,
                            http=functools.partial(HttpServerProtocol, limits=limits))
    server = uvicorn.Server(config)
    # Small kernel buffers (the accepted sockets inherit the listener's): the server's writes resume as soon as
    # the client reads a little, as they would behind larger buffers a client has filled.
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    listener.bind(("127.0.0.1", port))
    listener.listen()
    with serving(server, sockets=[listener]):
        yield port
    listener.close()


def ask(port: int) -> socket.socket:
    ended.clear()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
    return sock


def read(sock: socket.socket, size: int) -> bool:
    """Read `size` bytes; False if the server cut the connection first."""
    got = 0
    try:
        while got < size:
            piece = sock.recv(65536)
            if not piece:
                return False
            got += len(piece)
    except ConnectionResetError:
        return False
    return True


def test_a_client_reading_a_little_now_and_then_is_cut_off_at_its_answers_total_write_deadline(port):
    sock = ask(port)
    started = time.monotonic()
    cut = False
    while not cut and time.monotonic() - started < 8:
        time.sleep(0.3)  # each pause well within the deadline, ended by reads far slower than the drain rate
        cut = not read(sock, 32 * 1024) or ended.is_set()
    elapsed = time.monotonic() - started
    sock.close()
    assert cut, "a client reading a little every 0.3 s kept its answer going"
    assert elapsed < 5, elapsed  # 1.5 s of waiting in total, plus a sweep and what the buffers held
    assert ended.wait(5), "the answer went on after the client was cut off"


def test_a_client_reading_as_fast_as_it_can_is_never_cut_off(port):
    sock = ask(port)
    started = time.monotonic()
    while time.monotonic() - started < 3:  # its writes pause often (the app is faster), each briefly
        assert read(sock, 1024 * 1024), "a client reading all it could was cut off"
    sock.close()
