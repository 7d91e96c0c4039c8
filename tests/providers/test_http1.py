"""The node's upstream HTTP client against raw loopback servers that misbehave on purpose."""

import asyncio
import socket
import threading

import pytest

from llmrelay.providers.http1 import Client, ConnectionLost


class RawServer:
    """A TCP server whose answer to each request is written by `handler(connection, request_bytes)`."""

    def __init__(self, handler):
        self.handler = handler
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/x"

    def _serve(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk, args=(connection,), daemon=True).start()

    def _talk(self, connection):
        with connection:
            while True:
                request = b""
                while b"\r\n\r\n" not in request:
                    data = connection.recv(65536)
                    if not data:
                        return
                    request += data
                if self.handler(connection, request) == "close":
                    return

    def close(self):
        self.listener.close()


def run(coroutine):
    return asyncio.run(coroutine)


def test_a_pooled_connection_closed_by_the_upstream_is_retried_on_a_fresh_one():
    def answer_then_close(connection, request):
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return "close"  # as an upstream whose idle timeout ends the connection after each answer

    server = RawServer(answer_then_close)

    async def scenario():
        client = Client()
        for _ in range(3):
            response = await client.request("POST", server.url, {}, b"{}", 2, 2)
            assert (response.status, await response.read()) == (200, b"ok")
            await asyncio.sleep(0.05)  # let the close arrive while the connection sits in the pool
        client.close()

    run(scenario())
    assert server.connections == 3


def test_chunked_body_streams_chunk_by_chunk():
    gate = threading.Event()

    def chunked(connection, request):
        connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        gate.wait(5)
        connection.sendall(b"6\r\nsecond\r\n0\r\n\r\n")

    server = RawServer(chunked)

    async def scenario():
        response = await Client().request("GET", server.url, {}, None, 2, 2)
        chunks = response.iter_chunks()
        assert await chunks.__anext__() == b"first"
        gate.set()
        assert [chunk async for chunk in chunks] == [b"second"]

    run(scenario())


def test_a_body_without_length_ends_with_the_connection():
    def until_close(connection, request):
        connection.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        return "close"

    server = RawServer(until_close)

    async def scenario():
        response = await Client().request("GET", server.url, {}, None, 2, 2)
        assert await response.read() == b"all of it"

    run(scenario())


def test_an_upstream_dying_mid_body_is_an_error_not_an_end():
    def dies(connection, request):
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        return "close"

    server = RawServer(dies)

    async def scenario():
        response = await Client().request("GET", server.url, {}, None, 2, 2)
        with pytest.raises(ConnectionLost):
            await response.read()

    run(scenario())


def test_a_malformed_answer_is_an_error():
    server = RawServer(lambda connection, request: connection.sendall(b"NOT HTTP AT ALL\r\n\r\n") or "close")

    async def scenario():
        with pytest.raises(ConnectionLost):
            await Client().request("GET", server.url, {}, None, 2, 2)

    run(scenario())


def test_a_slow_reader_pauses_the_upstream_instead_of_buffering_everything():
    size = 8 * 1024 * 1024

    def big(connection, request):
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        try:
            connection.sendall(b"x" * size)
        except OSError:
            pass

    server = RawServer(big)

    async def scenario():
        response = await Client().request("GET", server.url, {}, None, 2, 2)
        await asyncio.sleep(0.5)  # the upstream sends as fast as it can while nobody reads
        buffered = response._buffered
        total = 0
        async for chunk in response.iter_chunks():
            total += len(chunk)
        return buffered, total

    buffered, total = run(scenario())
    assert total == size
    assert buffered < 3 * 1024 * 1024, "reading paused near the limit"


def test_requests_carry_host_length_and_the_given_headers():
    seen = []

    def record(connection, request):
        seen.append(request)
        connection.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    server = RawServer(record)

    async def scenario():
        response = await Client().request("POST", server.url + "?a=1", {"X-Test": "yes"}, b"body", 2, 2)
        await response.read()

    run(scenario())
    head = seen[0].split(b"\r\n")
    assert head[0] == b"POST /x?a=1 HTTP/1.1"
    assert f"host: 127.0.0.1:{server.port}".encode() in head
    assert b"X-Test: yes" in head and b"content-length: 4" in head
