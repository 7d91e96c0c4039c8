"""Deadlines no client can dodge, on a real node over raw sockets: a body has a total deadline from its
headers, a request holds a capacity slot only once its body is in, and a client that leaves its answer
unread is cut off and its request released."""

import asyncio
import json
import socket
import threading
import time

import httpx
import pytest
from aiohttp import web

from tests.fakes.server import FakeServer

USER = [{"role": "user", "content": "hi"}]


def head(node, path: str, length: int) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def in_flight(node) -> int:
    return httpx.get(node.url + "/admin/stats", timeout=5).json()["in_flight"]


def test_requests_waiting_for_their_bodies_hold_no_capacity_slot(start_node, ollama):
    node = start_node({"LLM_CHAT_URL": ollama.url, "LLMRELAY_MAX_IN_FLIGHT": "2", "LLMRELAY_QUEUE_SIZE": "0",
                       "LLMRELAY_EMBEDDED": "false"})
    idle = []
    for _ in range(4):  # twice the node's capacity: headers, and a body that never comes
        sock = socket.create_connection(("127.0.0.1", node.port), timeout=5)
        sock.sendall(head(node, "/api/v1/chat", 1000))
        idle.append(sock)
    time.sleep(0.3)
    response = httpx.post(node.url + "/api/v1/chat", timeout=10,
                          json={"model": "llama3", "messages": USER, "stream": False})
    assert response.status_code == 200, response.text
    assert in_flight(node) == 0
    for sock in idle:
        sock.close()


def test_a_body_trickled_in_a_byte_at_a_time_is_cut_off_at_its_total_deadline(start_node, ollama):
    node = start_node({"LLM_CHAT_URL": ollama.url, "LLMRELAY_BODY_TIMEOUT": "2", "LLMRELAY_EMBEDDED": "false"})
    sock = socket.create_connection(("127.0.0.1", node.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(head(node, "/api/v1/chat", 100))
    sent_at = time.monotonic()
    stop = threading.Event()

    def trickle():  # a byte every half second: each read well within the deadline, the whole body never
        while not stop.wait(0.5):
            try:
                sock.send(b" ")
            except OSError:
                return

    threading.Thread(target=trickle, daemon=True).start()
    answer = b""
    try:
        while piece := sock.recv(65536):
            answer += piece
    except ConnectionResetError:
        pass
    elapsed = time.monotonic() - sent_at
    stop.set()
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    error = json.loads(answer.partition(b"\r\n\r\n")[2])["error"]
    assert error["type"] == "request_timeout" and "LLMRELAY_BODY_TIMEOUT" in error["message"]
    assert 2 <= elapsed < 3.5, elapsed  # the deadline, plus at most a sweep (a quarter of it) and some slack
    assert not ollama.requests


class EndlessOllama(FakeServer):
    """An Ollama that streams one chat answer for ever, until its client (the node) goes away."""

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/chat", self.chat)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        line = json.dumps({"model": "llama3", "created_at": "2024-01-01T00:00:00Z", "done": False,
                           "message": {"role": "assistant", "content": "word " * 200}}).encode() + b"\n"
        try:
            while True:
                await response.write(line)
        except (asyncio.CancelledError, ConnectionResetError):
            self.disconnected.set()
            raise


@pytest.fixture
def endless():
    server = EndlessOllama().start()
    yield server
    server.stop()


def test_a_client_that_never_reads_its_answer_is_cut_off_and_its_request_released(start_node, endless):
    node = start_node({"LLM_CHAT_URL": endless.url, "LLMRELAY_WRITE_TIMEOUT": "1", "LLMRELAY_EMBEDDED": "false"})
    body = json.dumps({"model": "llama3", "messages": USER}).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
    sock.settimeout(10)
    sock.connect(("127.0.0.1", node.port))
    sock.sendall(head(node, "/api/chat", len(body)) + body)
    started = time.monotonic()
    assert in_flight(node) == 1  # streaming, into buffers that soon fill: the client reads nothing
    while in_flight(node) and time.monotonic() - started < 8:
        time.sleep(0.1)
    released = time.monotonic() - started
    assert in_flight(node) == 0, "the stream to a client that reads nothing went on"
    assert released < 4, released  # the deadline (1 s) once the buffers fill, plus a sweep
    assert endless.disconnected.wait(5), "the upstream request was not cancelled"
    closed = False
    try:
        while sock.recv(65536):  # what the buffers held, then the end: the node closed the connection
            assert time.monotonic() - started < 15
        closed = True
    except ConnectionResetError:
        closed = True
    sock.close()
    assert closed


def test_a_pipelined_head_is_not_timed_out_while_the_node_is_not_reading_it(start_node, ollama):
    node = start_node({"LLM_CHAT_URL": ollama.url, "LLMRELAY_EMBEDDED": "false", "LLMRELAY_HEADER_TIMEOUT": "1"})
    held = json.dumps({"model": "hold-last", "messages": USER}).encode()
    health = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\n".encode()
    sock = socket.create_connection(("127.0.0.1", node.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # A long answer, a request queued behind it (the node stops reading), and the start of a third head.
    sock.sendall(head(node, "/api/chat", len(held)) + held + health + b"\r\n" + health)
    time.sleep(2.5)  # past the header deadline, all of it spent on the first answer
    ollama.release.set()
    data = b""
    while data.count(b'"status":"ok"') < 1:  # the held stream ends, then the queued request is answered
        piece = sock.recv(65536)
        assert piece, data
        data += piece
    assert b"0\r\n\r\nHTTP/1.1 200 " in data, data
    sock.sendall(b"Connection: close\r\n\r\n")  # the third head's end
    while piece := sock.recv(65536):
        data += piece
    sock.close()
    assert data.count(b'"status":"ok"') == 2, data


def test_a_long_answer_to_a_head_read_with_the_previous_request_is_not_cut_off_as_idle(start_node, ollama):
    node = start_node({"LLM_CHAT_URL": ollama.url, "LLMRELAY_EMBEDDED": "false"})  # keep-alive: uvicorn's 5 s
    body = json.dumps({"model": "slow", "messages": USER, "stream": False}).encode()
    second = head(node, "/api/chat", len(body))
    ollama.slow_seconds = 7  # past the keep-alive deadline, counted from the first answer
    try:
        sock = socket.create_connection(("127.0.0.1", node.port), timeout=15)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\n\r\n".encode() + second[:20])
        data = b""
        while b'"status":"ok"' not in data:  # the first answer, the second head begun: not idle
            piece = sock.recv(65536)
            assert piece, data
            data += piece
        sock.sendall(second[20:] + body)
        while b'"done":' not in data.rpartition(b"HTTP/1.1 ")[2]:
            piece = sock.recv(65536)
            assert piece, f"closed before the second answer: {data!r}"
            data += piece
        sock.close()
    finally:
        ollama.slow_seconds = 2.0
    assert data.rpartition(b"HTTP/1.1 ")[2].startswith(b"200 "), data
