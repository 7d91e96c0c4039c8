"""Outbound proxies from the environment (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY; either case) and the
CONNECT tunnel through one.

https upstreams go through a CONNECT tunnel with TLS to the upstream inside it; http upstreams are sent to the
proxy as absolute-form requests (`GET http://host/path`), as curl does. Only http:// proxies are supported.
"""

import asyncio
import base64
import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

_MAX_CONNECT_HEAD = 16 * 1024


class ProxyError(ConnectionError):
    """The proxy was unreachable or refused the tunnel. The message names the proxy, never its credentials."""


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    display: str  # http://host:port: for errors and logs
    # The Proxy-Authorization value, from user:password in the URL; kept out of repr, which logs may show.
    authorization: bytes | None = field(default=None, repr=False)
    problem: str | None = None  # set when the variable cannot be used; connecting raises it

    def header_line(self) -> bytes:
        return b"proxy-authorization: " + self.authorization if self.authorization else b""


def parse_proxy(url: str, variable: str) -> Proxy:
    parts = urlsplit(url if "://" in url else "http://" + url)
    host = parts.hostname or ""
    try:
        port = parts.port or 80
    except ValueError:
        port = 0
    display = f"{parts.scheme}://{'[' + host + ']' if ':' in host else host}:{port}"
    if parts.scheme != "http" or not host or not port:
        return Proxy(host, port, display, problem=f"the proxy {display} in {variable} is not supported; "
                                                  "use an http://host:port proxy")
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        authorization = b"Basic " + base64.b64encode(pair)
    return Proxy(host, port, display, authorization)


class Proxies:
    """Which proxy, if any, an upstream is reached through. Read once, when the client is made."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        environ = os.environ if environ is None else environ

        def variable(name: str) -> tuple[str, str] | None:
            for spelled in (name.lower(), name.upper()):  # lower case first, as curl and urllib do
                if environ.get(spelled):
                    return spelled, environ[spelled].strip()
            return None

        fallback = variable("ALL_PROXY")
        self.by_scheme: dict[str, Proxy] = {}
        for scheme in ("http", "https"):
            found = variable(f"{scheme.upper()}_PROXY") or fallback
            if found is not None:
                self.by_scheme[scheme] = parse_proxy(found[1], found[0])
        found = variable("NO_PROXY")
        self.no_proxy = [entry for entry in (found[1].lower().replace(",", " ").split() if found else ())]

    def select(self, scheme: str, host: str, port: int) -> Proxy | None:
        proxy = self.by_scheme.get(scheme)
        if proxy is None or self.bypassed(host, port):
            return None
        return proxy

    def bypassed(self, host: str, port: int) -> bool:
        """NO_PROXY: `*`, host names (a name also covers its subdomains; a leading `.` or `*.` is the same),
        host:port, IP addresses and CIDR ranges."""
        host = host.lower().strip("[]")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        for entry in self.no_proxy:
            if entry == "*":
                return True
            if "/" in entry:
                try:
                    if address is not None and address in ipaddress.ip_network(entry, strict=False):
                        return True
                except ValueError:
                    pass
                continue
            name, entry_port = _split_port(entry)
            if entry_port is not None and entry_port != port:
                continue
            name = name.removeprefix("*").removeprefix(".")
            if host == name or (address is None and host.endswith("." + name)):
                return True
        return False


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [::1]:8080 or [::1]
        name, _, rest = entry[1:].partition("]")
        return name, int(rest[1:]) if rest[1:].isdigit() else None
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        return name, int(port) if port.isdigit() else None
    return entry, None  # a name, or a bare IPv6 address


async def open_tunnel(loop: asyncio.AbstractEventLoop, proxy: Proxy, host: str, port: int) -> socket.socket:
    """A socket connected through `proxy` to host:port by CONNECT, ready for TLS to the upstream."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    sock = await connect_to(loop, proxy)
    try:
        head = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n".encode()
        if proxy.authorization:
            head += b"Proxy-Authorization: " + proxy.authorization + b"\r\n"
        await loop.sock_sendall(sock, head + b"\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = await loop.sock_recv(sock, 4096)
            if not data:
                raise ProxyError(f"the proxy {proxy.display} closed the connection instead of opening a tunnel "
                                 f"to {authority}")
            answer += data
            if len(answer) > _MAX_CONNECT_HEAD:
                raise ProxyError(f"the proxy {proxy.display} sent an oversized answer to CONNECT {authority}")
        status_line = answer.partition(b"\r\n")[0]
        fields = status_line.split(b" ", 2)
        if len(fields) < 2 or not fields[0].startswith(b"HTTP/1.") or not fields[1].startswith(b"2"):
            said = status_line[:100].decode("latin-1")
            hint = "; check the credentials in the proxy URL" if fields[1:2] in ([b"401"], [b"407"]) else ""
            raise ProxyError(f"the proxy {proxy.display} refused the tunnel to {authority} ({said}){hint}")
        if answer.index(b"\r\n\r\n") + 4 != len(answer):
            # Bytes after the proxy's answer would be taken as the upstream's TLS: refuse them.
            raise ProxyError(f"the proxy {proxy.display} sent data past its answer to CONNECT {authority}")
    except BaseException:
        sock.close()
        raise
    return sock


async def connect_to(loop: asyncio.AbstractEventLoop, proxy: Proxy) -> socket.socket:
    if proxy.problem:
        raise ProxyError(proxy.problem)
    try:
        infos = await loop.getaddrinfo(proxy.host, proxy.port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise ProxyError(f"the host name of the proxy {proxy.display} does not resolve") from None
    error: OSError | None = None
    for family, kind, protocol, _, address in infos:
        sock = socket.socket(family, kind, protocol)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
    reason = "connection refused" if isinstance(error, ConnectionRefusedError) else (
        getattr(error, "strerror", None) or str(error))
    raise ProxyError(f"cannot connect to the proxy {proxy.display} ({reason})")
