"""Property-based: the upstream client's decoding of random answers, in random TCP-read splits, matches h11's
(the reference parser): the same body, the same end, the same verdict on reusing the connection."""

import asyncio

import h11
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmrelay.providers.http1 import Connection, Pool

TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8)
QUOTED = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 -=;", max_size=10).map(lambda t: f'"{t}"')
EXTENSION = st.tuples(TOKEN, st.one_of(st.none(), TOKEN, QUOTED)).map(
    lambda pair: f";{pair[0]}" + (f"={pair[1]}" if pair[1] is not None else ""))


class FakeTransport(asyncio.Transport):
    def __init__(self):
        super().__init__()
        self.closed = False

    def write(self, data):
        pass

    def close(self):
        self.closed = True

    def is_closing(self):
        return self.closed

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass

    def get_extra_info(self, name, default=None):
        return default


@st.composite
def answers(draw):
    """(wire bytes of one answer, its body, whether it is chunked, its version, its Connection header)."""
    body = draw(st.binary(max_size=2000))
    version = draw(st.sampled_from(["1.1", "1.1", "1.0"]))
    connection = draw(st.sampled_from([None, "close", "keep-alive"]))
    chunked = draw(st.booleans())
    head = [f"HTTP/{version} 200 OK"]
    if connection:
        head.append(f"Connection: {connection}")
    if chunked:
        head.append("Transfer-Encoding: chunked")
        wire = b""
        rest = body
        while rest:
            size = draw(st.integers(1, max(1, len(rest))))
            extensions = "".join(draw(st.lists(EXTENSION, max_size=2)))
            wire += f"{size:{draw(st.sampled_from(['x', 'X']))}}{extensions}\r\n".encode() + rest[:size] + b"\r\n"
            rest = rest[size:]
        last_extensions = "".join(draw(st.lists(EXTENSION, max_size=1)))
        trailers = "".join(f"x-{name}: v\r\n" for name in draw(st.lists(TOKEN, max_size=2, unique=True)))
        wire += f"0{last_extensions}\r\n{trailers}\r\n".encode()
    else:
        head.append(f"Content-Length: {len(body)}")
        wire = body
    return ("\r\n".join(head) + "\r\n\r\n").encode() + wire, body


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:]) if b > a]


def ours(loop, pieces: list[bytes]) -> tuple[bytes, bool, bool]:
    pool = Pool("http", "upstream", 80, None)
    connection = Connection(pool, loop)
    connection.connection_made(FakeTransport())
    connection.send(b"GET / HTTP/1.1\r\nhost: upstream\r\n\r\n", None)
    response = connection.response
    for piece in pieces:
        connection.data_received(piece)
    body = b"".join(response._chunks)
    complete = response._complete and response._error is None
    response._chunks.clear()
    response.release()
    return body, complete, bool(pool.idle)


def reference(pieces: list[bytes]) -> tuple[bytes, bool, bool]:
    conn = h11.Connection(our_role=h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "upstream")]))
    conn.send(h11.EndOfMessage())
    body, complete = b"", False
    for piece in pieces:
        conn.receive_data(piece)
        while (event := conn.next_event()) not in (h11.NEED_DATA, h11.PAUSED):
            if isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                complete = True
    reusable = complete and conn.our_state is h11.DONE and conn.their_state is h11.DONE
    return body, complete, reusable


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers(), st.lists(st.integers(0, 10_000), max_size=12))
def test_upstream_chunked_and_length_decoding_matches_h11(answer, cuts):
    wire, body = answer
    pieces = splits(wire, cuts)
    loop = asyncio.new_event_loop()
    try:
        got = ours(loop, pieces)
    finally:
        loop.close()
    assert got == reference(pieces)
    assert got[:2] == (body, True)


def ours_after(loop, pieces: list[bytes], closed: bool) -> tuple[bool, bool]:
    """(the answer completed without error, the connection went back to the pool)."""
    pool = Pool("http", "upstream", 80, None)
    connection = Connection(pool, loop)
    connection.connection_made(FakeTransport())
    connection.send(b"GET / HTTP/1.1\r\nhost: upstream\r\n\r\n", None)
    response = connection.response
    for piece in pieces:
        connection.data_received(piece)
    if closed:
        connection.connection_lost(None)
    complete = response._complete and response._error is None
    response._chunks.clear()
    response.close()
    return complete, bool(pool.idle)


def reference_after(wire: bytes, closed: bool) -> tuple[bool, bool]:
    """h11's verdict: complete means an EndOfMessage with nothing left over, and no error at the close."""
    conn = h11.Connection(our_role=h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "upstream")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(wire)
    if closed:
        conn.receive_data(b"")
    complete = False
    try:
        while (event := conn.next_event()) not in (h11.NEED_DATA, h11.PAUSED):
            if isinstance(event, h11.EndOfMessage):
                complete = True
            if isinstance(event, h11.ConnectionClosed):
                break
    except h11.RemoteProtocolError:
        return False, False
    leftover = bool(conn.trailing_data[0])
    return complete and not leftover, complete and not leftover and not closed


EXTRA = st.one_of(st.binary(min_size=1, max_size=20),
                  st.sampled_from([b"\r\n", b"\n", b"\r\n\r\n", b"0\r\n\r\n", b"HTTP/1.1 200 OK\r\n",
                                   b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nstolen"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers(), st.integers(-200, 200), EXTRA, st.booleans(), st.lists(st.integers(0, 10_000), max_size=6))
def test_upstream_answer_cut_short_or_followed_by_extra_bytes_is_never_reused(answer, cut, extra, closed, cuts):
    """An answer cut short (then closed, or not) or followed by bytes of no answer: never complete, never pooled;
    the verdict agrees with h11's. Stray CR/LF after an answer is the one tolerance (llhttp skips empty lines
    between messages, as RFC 9112 section 2.2 lets a recipient): it carries no bytes anyone could receive."""
    wire, _ = answer
    if cut < 0:
        wire = wire[:max(0, len(wire) + cut)]
    elif cut > 0:
        wire = wire + extra
    loop = asyncio.new_event_loop()
    try:
        got = ours_after(loop, splits(wire, cuts), closed)
    finally:
        loop.close()
    stray_line_ends = cut > 0 and not extra.strip(b"\r\n")
    expected = reference_after(wire[:-len(extra)] if stray_line_ends else wire, closed)
    if b"HTTP/1.0" in wire[:8] or b"Connection: close" in wire:
        expected = (expected[0], False)  # h11 agrees on completion; neither reuses such a connection
    assert got == expected
    if cut and not stray_line_ends:
        assert got == (False, False)
