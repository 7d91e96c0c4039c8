"""Request bodies and the server protocol, on a real node over raw sockets: the app is called once a body is
in, except a body too large, which it refuses without waiting for; the rest of such a body is read and
dropped, and the connection goes on."""

import json
import re
import socket
import time

import httpx
import pytest

LIMIT = 1000  # LLMRELAY_MAX_BODY_BYTES of the node here


@pytest.fixture(scope="module")
def node(ollama, tmp_path_factory):
    from tests.support.node import Node
    env = {"LLM_CHAT_URL": ollama.url, "LLMRELAY_EMBEDDED": "false", "LLMRELAY_MAX_BODY_BYTES": str(LIMIT)}
    with Node(env, cwd=tmp_path_factory.mktemp("bodies")) as running:
        yield running


def connect(node) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", node.port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def head(node, extra: str) -> bytes:
    return (f"POST /api/v1/chat HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\nContent-Type: application/json\r\n"
            f"{extra}\r\n").encode()


def read_answer(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        assert piece, f"closed before an answer: {data!r}"
        data += piece
    status, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", status.lower()).group(1))
    while len(body) < length:
        body += sock.recv(65536)
    return status, body[:length]


def test_a_body_declared_too_large_is_refused_without_waiting_for_it(node, ollama):
    with connect(node) as sock:
        sock.sendall(head(node, f"Content-Length: {LIMIT * 10}\r\nExpect: 100-continue\r\n"))
        started = time.monotonic()
        status, body = read_answer(sock)  # no 100 Continue first: the body is not wanted
    assert status.startswith(b"HTTP/1.1 413 "), status
    assert json.loads(body)["error"]["type"] == "request_too_large"
    assert time.monotonic() - started < 1
    assert not ollama.requests


def test_a_chunked_body_growing_too_large_is_refused_without_waiting_for_its_end(node, ollama):
    with connect(node) as sock:
        sock.sendall(head(node, "Transfer-Encoding: chunked\r\n") + b"190\r\n" + b"x" * 400 + b"\r\n")
        time.sleep(0.05)
        sock.sendall(b"3e8\r\n" + b"x" * 1000 + b"\r\n")  # past the limit, and no end in sight
        started = time.monotonic()
        status, _ = read_answer(sock)
    assert status.startswith(b"HTTP/1.1 413 "), status
    assert time.monotonic() - started < 1
    assert not ollama.requests


def test_the_rest_of_a_refused_body_is_read_and_dropped_and_the_connection_goes_on(node):
    with connect(node) as sock:
        sock.sendall(head(node, f"Content-Length: {LIMIT * 1000}\r\n"))
        status, _ = read_answer(sock)
        assert status.startswith(b"HTTP/1.1 413 "), status
        sock.sendall(b"x" * LIMIT * 1000)  # the client sends its body anyway: more than the node would hold
        sock.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\n\r\n".encode())
        status, body = read_answer(sock)
    assert status.startswith(b"HTTP/1.1 200 "), status
    assert json.loads(body)["status"] == "ok"


def test_a_pipelined_request_waiting_for_100_continue_is_not_timed_out_before_its_turn(start_node, ollama):
    node = start_node({"LLM_CHAT_URL": ollama.url, "LLMRELAY_EMBEDDED": "false", "LLMRELAY_BODY_TIMEOUT": "1"})
    held = json.dumps({"model": "hold-last", "messages": [{"role": "user", "content": "hi"}]}).encode()
    body = json.dumps({"model": "llama3", "messages": [{"role": "user", "content": "hi"}], "stream": False}).encode()
    with connect(node) as sock:
        sock.sendall(head(node, f"Content-Length: {len(held)}\r\n").replace(b"/api/v1/chat", b"/api/chat") + held
                     + head(node, f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n"))
        time.sleep(2.5)  # the second waits for its 100 Continue past the body deadline: not its fault
        ollama.release.set()
        data = b""
        while b"0\r\n\r\nHTTP/1.1 " not in data:  # the held stream ends, then the second request's turn
            piece = sock.recv(65536)
            assert piece, data
            data += piece
        while not data.endswith(b"HTTP/1.1 100 Continue\r\n\r\n"):
            piece = sock.recv(65536)
            assert piece and b"408" not in data, data
            data += piece
        sock.sendall(body)
        status, answer = read_answer(sock)
    assert status.startswith(b"HTTP/1.1 200 "), status
    assert json.loads(answer)["done"] is True


def test_a_body_refused_before_100_continue_closes_the_connection_rather_than_take_the_next_request_as_it(node):
    with connect(node) as sock:
        sock.sendall(head(node, f"Content-Length: {LIMIT * 10}\r\nExpect: 100-continue\r\n"))
        status, _ = read_answer(sock)
        assert status.startswith(b"HTTP/1.1 413 "), status
        assert b"connection: close" in status.lower()  # the client, never told to go on, sends no body
        sock.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\n\r\n".encode())
        try:
            rest = sock.recv(65536)
        except ConnectionResetError:
            rest = b""
    assert rest == b"", rest  # closed: the next request was neither answered nor read as that body


MASTER_KEY = "master-key-for-buffer-budget-0123"
BUDGET = 100_000  # LLMRELAY_MAX_BUFFERED_BYTES of the node below


def nothing_answered(sock: socket.socket, wait: float) -> bool:
    sock.settimeout(wait)
    try:
        sock.recv(65536)  # an answer, or the end
    except TimeoutError:
        return True
    finally:
        sock.settimeout(5)
    return False


def test_unauthenticated_partial_bodies_past_the_buffer_budget_go_to_the_app_instead_of_filling_memory(start_node,
                                                                                                        ollama):
    node = start_node({"LLM_CHAT_URL": ollama.url, "LLMRELAY_EMBEDDED": "false", "LLMRELAY_MASTER_KEY": MASTER_KEY,
                       "LLMRELAY_MAX_BUFFERED_BYTES": str(BUDGET)})
    partial = head(node, "Content-Length: 1000000\r\n") + b"x" * 60_000  # of a body 1 MB long, never ended
    first = connect(node)
    first.sendall(partial)
    assert nothing_answered(first, 0.5)  # within the budget: its body is awaited, no key checked yet
    later = []
    for _ in range(3):  # the budget is spent: each of these goes to the app at once, which wants a key
        sock = connect(node)
        sock.sendall(partial)
        status, body = read_answer(sock)
        assert status.startswith(b"HTTP/1.1 401 "), status
        later.append(sock)
    response = httpx.get(node.url + "/admin/stats", headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=5)
    assert response.status_code == 200, response.text
    for sock in (first, *later):
        sock.close()
    time.sleep(0.3)  # the bodies they held are no longer counted: a new one is awaited again
    with connect(node) as sock:
        sock.sendall(partial)
        assert nothing_answered(sock, 0.5)
    assert not ollama.requests
