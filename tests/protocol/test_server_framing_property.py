"""The server protocol's request framing against h11 as a reference parser: pipelined requests with random
methods, targets, headers and bodies (Content-Length, or chunked with random chunk sizes, extensions and
trailers), sent in random pieces to HttpServerProtocol under a real uvicorn on loopback. The app must see the
requests h11 parses (method, target, headers, body), answered in order."""

import functools
import json
import socket
import time

import h11
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmrelay.server_protocol import HttpServerProtocol, ServerLimits
from tests.support.in_process import serving
from tests.support.node import free_port


async def echo(scope, receive, send):
    """Answers what it was asked: method, target, headers and body, as JSON."""
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    target = scope["raw_path"] + (b"?" + scope["query_string"] if scope["query_string"] else b"")
    seen = json.dumps({"method": scope["method"], "target": target.decode("latin-1"), "body": body.hex(),
                       "headers": [[name.decode("latin-1"), value.decode("latin-1")]
                                   for name, value in scope["headers"]]}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(seen)).encode())]})
    await send({"type": "http.response.body", "body": seen})


@pytest.fixture(scope="module")
def server():
    # A header limit far below the bodies but above every head: reads that hold a body and the start of the
    # next head must never be taken for a head too large.
    port = free_port()
    protocol = functools.partial(HttpServerProtocol, limits=ServerLimits(max_header_bytes=1024))
    config = uvicorn.Config(echo, host="127.0.0.1", port=port, loop="uvloop", http=protocol,
                            lifespan="off", log_config=None)
    with serving(uvicorn.Server(config)):
        yield port


TOKEN = st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,8}", fullmatch=True)
SEGMENT = st.from_regex(r"[A-Za-z0-9._~!$&'()*+,;=:@-]{0,8}(%[0-9A-Fa-f]{2})?", fullmatch=True)
QUERY = st.from_regex(r"[A-Za-z0-9._~=&/?:@-]{0,12}", fullmatch=True)
VALUE = st.from_regex(r"[!-~]([ !-~]{0,20}[!-~])?", fullmatch=True)  # visible ASCII, spaces only inside


@st.composite
def requests(draw) -> bytes:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]))
    target = "/" + "/".join(draw(st.lists(SEGMENT, max_size=4)))
    if draw(st.booleans()):
        target += "?" + draw(QUERY)
    headers = [("Host", "example.com")] + [("X-" + draw(TOKEN), draw(VALUE)) for _ in range(draw(st.integers(0, 4)))]
    body = draw(st.binary(max_size=3000))
    framing = draw(st.sampled_from(["length", "chunked"] + (["none"] if not body else [])))
    if framing == "length":
        headers.append(("Content-Length", str(len(body))))
        encoded = body
    elif framing == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        encoded = b""
        rest = body
        while rest:
            size = draw(st.integers(1, len(rest)))
            extension = draw(st.one_of(st.just(""), TOKEN.map(lambda t: ";" + t),
                                       st.tuples(TOKEN, TOKEN).map(lambda p: f";{p[0]}={p[1]}")))
            digits = draw(st.sampled_from(["%x", "%X", "0%x"])) % size
            encoded += f"{digits}{extension}\r\n".encode() + rest[:size] + b"\r\n"
            rest = rest[size:]
        trailers = [("X-Trailer-" + draw(TOKEN), draw(VALUE)) for _ in range(draw(st.integers(0, 2)))]
        if draw(st.booleans()):
            trailers.append(("Authorization", "Bearer " + draw(TOKEN)))  # never a header of the request
        encoded += b"0\r\n" + b"".join(f"{n}: {v}\r\n".encode() for n, v in trailers) + b"\r\n"
    else:
        encoded = b""
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers) + "\r\n"
    return head.encode() + encoded


def reference(data: bytes) -> list[dict]:
    """The requests h11 parses from `data`, as the echo app reports them."""
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(data)
    parsed = []
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            return parsed
        if event is h11.PAUSED:  # h11 goes on to the next request once this one is answered
            connection.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
            connection.send(h11.EndOfMessage())
            connection.start_next_cycle()
        elif isinstance(event, h11.Request):
            parsed.append({"method": event.method.decode(), "target": event.target.decode("latin-1"), "body": "",
                           "headers": [[name.decode("latin-1"), value.decode("latin-1")]
                                       for name, value in event.headers.raw_items()]})
        elif isinstance(event, h11.Data):
            parsed[-1]["body"] += event.data.hex()


def as_asgi_sees_it(seen: list[dict]) -> list[dict]:
    """Header names in lower case, and a target without its "?" when the query is empty (ASGI's scope cannot
    tell "/a?" from "/a")."""
    return [{**request, "target": _target(request["target"]),
             "headers": [[name.lower(), value] for name, value in request["headers"]]} for request in seen]


def _target(target: str) -> str:
    path, _, query = target.partition("?")
    return path + "?" + query if query else path


def answers(sock: socket.socket, count: int) -> list[dict]:
    """`count` responses read from `sock`, in the order they came."""
    data = b""
    seen = []
    while len(seen) < count:
        while b"\r\n\r\n" not in data:
            piece = sock.recv(65536)
            assert piece, f"closed after {len(seen)} of {count} answers"
            data += piece
        head, _, data = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(data) < length:
            piece = sock.recv(65536)
            assert piece, "closed mid-answer"
            data += piece
        seen.append(json.loads(data[:length]))
        data = data[length:]
    return seen


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(pipeline=st.lists(requests(), min_size=1, max_size=4), data=st.data())
def test_pipelined_requests_in_random_pieces_frame_as_h11_parses_them(server, pipeline, data):
    wire = b"".join(pipeline)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(wire) - 1), max_size=8)))) if len(wire) > 1 else []
    expected = as_asgi_sees_it(reference(wire))
    assert len(expected) == len(pipeline)
    with socket.create_connection(("127.0.0.1", server), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for start, end in zip([0, *cuts], [*cuts, len(wire)]):
            sock.sendall(wire[start:end])
            time.sleep(0.001)  # most pieces reach the server as reads of their own
        assert answers(sock, len(pipeline)) == expected


def test_a_read_holding_a_body_and_the_start_of_the_next_head_is_not_a_head_too_large(server):
    first = b"POST /first HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3000\r\n\r\n" + b"x" * 3000
    second = b"GET /second HTTP/1.1\r\nHost: example.com\r\nX-Long: " + b"y" * 200 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(first + second[:40])  # one read: 3 KB, over the 1 KiB header limit, ending in a head
        time.sleep(0.05)
        sock.sendall(second[40:])
        assert [answer["target"] for answer in answers(sock, 2)] == ["/first", "/second"]
