"""Request bodies as real clients send them: all at once, in pieces, or after `Expect: 100-continue`. The
node takes a body that has all arrived in one step and reads one still arriving piece by piece; both must
reach the upstream byte for byte."""

import json
import socket
import time

BODY = json.dumps({"model": "llama3", "messages": [{"role": "user", "content": "why is the sky blue?"}],
                   "stream": False}).encode()


def head(body: bytes, extra: str = "") -> bytes:
    return (f"POST /api/v1/chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode()


def answer_of(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head_bytes, _, body = data.partition(b"\r\n\r\n")
    length = int(head_bytes.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head_bytes, body


def test_a_body_sent_in_pieces_reaches_the_upstream_whole(node, ollama):
    with socket.create_connection(("127.0.0.1", node.port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(head(BODY))
        for start in range(0, len(BODY), 20):
            sock.sendall(BODY[start:start + 20])
            time.sleep(0.02)
        status, body = answer_of(sock)
    assert status.startswith(b"HTTP/1.1 200 ")
    assert json.loads(body)["message"]["content"].startswith("The sky is blue")
    assert ollama.last().body == BODY


def test_a_client_that_waits_for_100_continue_gets_it_then_its_answer(node, ollama):
    with socket.create_connection(("127.0.0.1", node.port), timeout=5) as sock:
        sock.sendall(head(BODY, "Expect: 100-continue\r\n"))
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += sock.recv(65536)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"  # nothing of the answer before the body
        sock.sendall(BODY)
        status, body = answer_of(sock)
    assert status.startswith(b"HTTP/1.1 200 ")
    assert ollama.last().body == BODY


def test_a_body_sent_with_its_head_despite_expect_gets_no_100_continue(node, ollama):
    with socket.create_connection(("127.0.0.1", node.port), timeout=5) as sock:
        sock.sendall(head(BODY, "Expect: 100-continue\r\n") + BODY)
        status, body = answer_of(sock)
    assert status.startswith(b"HTTP/1.1 200 ")  # the answer comes first, no interim response before it
    assert ollama.last().body == BODY
