"""Socket settings the node applies to its own connections, and its listening socket for several workers."""

import socket
import sys


def no_delay(transport) -> None:
    """Send small writes at once: a stream is a run of small writes, and Nagle's algorithm would hold each
    one until the previous one is acknowledged."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # not a TCP socket (a Unix socket, in tests of others' making)


def workers_listener(host: str, port: int) -> socket.socket:
    """The node's address for `--workers N`: a socket that each worker process receives as a listening socket
    of its own on that address (SO_REUSEPORT), so the kernel spreads new connections over the workers.

    With uvicorn's one listening socket shared by every worker, the worker that wakes first accepts a whole
    burst of connections: 64 kept-alive connections opened at once landed 63 on one worker and 1 on the
    other, and a second worker added nothing. Where the kernel does not balance SO_REUSEPORT sockets (it does on
    Linux), the shared socket it is.

    The socket stays bound in the supervisor, never listening: it holds the port and names it (port 0). Raises
    OSError when the address is taken, also by another node's workers (whose sockets would let this one join).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:  # without SO_REUSEPORT: fails if anyone listens
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        address = probe.getsockname()
    balanced = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")
    sock = (_WorkerListener if balanced else socket.socket)(family, socket.SOCK_STREAM)
    _reuse(sock, balanced)
    sock.bind(address)
    sock.set_inheritable(True)
    return sock


class _WorkerListener(socket.socket):
    """Pickled for a worker process (how uvicorn hands it over), it arrives as a new socket bound to the same
    address with SO_REUSEPORT, which the worker's server then listens on."""

    def __reduce__(self):
        return _bound_for_worker, (self.family, self.getsockname())


def _bound_for_worker(family: int, address) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    _reuse(sock, True)
    sock.bind(address)
    return sock


def _reuse(sock: socket.socket, port: bool) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
