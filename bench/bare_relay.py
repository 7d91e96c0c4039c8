"""A bare byte relay on uvloop: what any Python proxy pays on these machines before doing any HTTP work.

Each client connection gets its own connection to the upstream, and bytes go across unchanged, both ways,
from the protocol callbacks (no parsing, no task, no future). bench/streams.py measures it beside nginx and
the node, as the floor a Python proxy cannot go below.

    python bench/bare_relay.py --port 9300 --upstream-port 9100
"""

import argparse
import asyncio
import socket

import uvloop


def _no_delay(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Upstream(asyncio.Protocol):
    def __init__(self, client: "Client"):
        self.client = client

    def connection_made(self, transport):
        _no_delay(transport)

    def data_received(self, data):
        self.client.transport.write(data)

    def connection_lost(self, exc):
        self.client.transport.close()


class Client(asyncio.Protocol):
    def __init__(self, port: int):
        self.port = port
        self.transport = None
        self.upstream = None
        self.early: list[bytes] = []  # bytes that came before the upstream connection was open

    def connection_made(self, transport):
        self.transport = transport
        _no_delay(transport)
        asyncio.get_running_loop().create_task(self.connect())

    async def connect(self):
        try:
            self.upstream, _ = await asyncio.get_running_loop().create_connection(
                lambda: Upstream(self), "127.0.0.1", self.port)
        except OSError:
            self.transport.close()
            return
        for data in self.early:
            self.upstream.write(data)
        self.early = []

    def data_received(self, data):
        if self.upstream is None:
            self.early.append(data)
        else:
            self.upstream.write(data)

    def connection_lost(self, exc):
        if self.upstream is not None:
            self.upstream.close()


async def serve(port: int, upstream_port: int) -> None:
    server = await asyncio.get_running_loop().create_server(lambda: Client(upstream_port), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream-port", type=int, required=True)
    options = parser.parse_args()
    uvloop.run(serve(options.port, options.upstream_port))


if __name__ == "__main__":
    main()
