"""Request framing corners on a real node over raw sockets: trailers, the header size limit however the
headers arrive, a malformed request behind a valid one, and upgrades the node does not speak."""

import json
import re
import socket
import time

import pytest

MASTER_KEY = "master-key-for-framing-tests-0123"


@pytest.fixture(scope="module")
def node(ollama, tmp_path_factory):
    from tests.support.node import Node
    env = {"LLM_CHAT_URL": ollama.url, "LLMRELAY_EMBEDDED": "false"}  # the default header limit: 64 KiB
    with Node(env, cwd=tmp_path_factory.mktemp("framing")) as running:
        yield running


@pytest.fixture(scope="module")
def keyed_node(ollama, tmp_path_factory):
    from tests.support.node import Node
    env = {"LLM_CHAT_URL": ollama.url, "LLMRELAY_EMBEDDED": "false", "LLMRELAY_MASTER_KEY": MASTER_KEY}
    with Node(env, cwd=tmp_path_factory.mktemp("framing-keyed")) as running:
        yield running


def connect(node) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", node.port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_to_close(sock: socket.socket) -> bytes:
    data = b""
    try:
        while piece := sock.recv(65536):
            data += piece
    except ConnectionResetError:
        pass
    return data


def statuses(answer: bytes) -> list[bytes]:
    """The status of each response in `answer` (the bodies here never hold a status line)."""
    return re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)


def test_trailers_never_become_request_headers(keyed_node):
    host = f"Host: 127.0.0.1:{keyed_node.port}\r\n".encode()
    with connect(keyed_node) as sock:  # the key as a header: the admin API answers
        sock.sendall(b"GET /admin/stats HTTP/1.1\r\n" + host + b"Authorization: Bearer " + MASTER_KEY.encode()
                     + b"\r\nConnection: close\r\n\r\n")
        assert statuses(read_to_close(sock)) == [b"200"]
    with connect(keyed_node) as sock:  # the key as a trailer after a chunked body: not a header
        sock.sendall(b"GET /admin/stats HTTP/1.1\r\n" + host + b"Transfer-Encoding: chunked\r\nConnection: close"
                     b"\r\n\r\n0\r\nAuthorization: Bearer " + MASTER_KEY.encode() + b"\r\n\r\n")
        assert statuses(read_to_close(sock)) == [b"401"]


def big_head(node, size: int) -> bytes:
    lines = [f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\n".encode()]
    lines += [b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(size // 1000)]
    return b"".join(lines) + b"\r\n"


def test_headers_over_the_limit_in_one_read_get_431(node):
    with connect(node) as sock:
        sock.sendall(big_head(node, 70_000))  # whole: the head completes within the read that brings it
        answer = read_to_close(sock)
    assert statuses(answer) == [b"431"]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["type"] == "request_header_too_large"


def test_headers_over_the_limit_in_many_small_reads_get_431(node):
    head = big_head(node, 70_000)
    with connect(node) as sock:
        try:
            for start in range(0, len(head), 1000):
                sock.sendall(head[start:start + 1000])
                time.sleep(0.001)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the end
        assert statuses(read_to_close(sock)) == [b"431"]


def test_headers_just_under_the_limit_are_served(node):
    with connect(node) as sock:
        sock.sendall(big_head(node, 60_000))
        sock.shutdown(socket.SHUT_WR)
        answer = read_to_close(sock)
    assert statuses(answer) == [b"200"]


def test_a_malformed_request_after_a_valid_one_is_answered_after_it(node):
    with connect(node) as sock:
        sock.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\n\r\n".encode()
                     + b"NOT HTTP AT ALL\r\n\r\n")  # in the same read
        answer = read_to_close(sock)  # and then the node closes
    assert statuses(answer) == [b"200", b"400"]
    assert answer.index(b'"status":"ok"') < answer.index(b"HTTP/1.1 400")


@pytest.mark.parametrize("upgrade", [
    b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n",
    b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
], ids=["websocket", "h2c"])
def test_an_upgrade_is_refused_rather_than_answered_as_plain_http(node, upgrade):
    with connect(node) as sock:
        sock.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\n".encode() + upgrade + b"\r\n"
                     + b"\x81\x85bytes of the other protocol")
        answer = read_to_close(sock)  # one answer, then the node closes
    assert statuses(answer) == [b"501"]
    error = json.loads(answer.partition(b"\r\n\r\n")[2])["error"]
    assert "does not speak" in error["message"]


def test_endless_pipelined_requests_are_refused_past_the_cap_not_queued_without_bound(node):
    request = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\n\r\n".encode()
    burst = request * (60_000 // len(request))  # well over a thousand requests, in one read of the node's
    with connect(node) as sock:
        sock.sendall(burst)
        answer = read_to_close(sock)  # the node answers what it queued, refuses the next and closes
    got = statuses(answer)
    assert got == [b"200"] * (1 + 16) + [b"429"], got  # the one answered, the 16 waiting (MAX_PIPELINED), refused
    error = json.loads(answer.rpartition(b"\r\n\r\n")[2])["error"]
    assert error["type"] == "too_many_pipelined_requests"
    with connect(node) as sock:  # and it goes on serving
        sock.sendall(request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        assert statuses(read_to_close(sock)) == [b"200"]
