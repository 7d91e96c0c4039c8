"""Socket settings the node applies to its own connections."""

import socket


def no_delay(transport) -> None:
    """Send small writes at once: a stream is a run of small writes, and Nagle's algorithm would hold each
    one until the previous one is acknowledged."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # not a TCP socket (a Unix socket, in tests of others' making)
