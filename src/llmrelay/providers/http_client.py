"""The node's HTTP client for upstreams: pooled keep-alive connections per host (providers/http1.py).

Turns every way an upstream call can fail before the answer starts into the node's errors, with a
message that names the upstream (never its credentials) and the setting that governs it.
"""

import asyncio
import socket
import ssl
import time
from collections.abc import Awaitable

from llmrelay.core.errors import UpstreamTimeout, UpstreamUnavailable
from llmrelay.providers.http1 import (
    MAX_CONNECTIONS_PER_HOST,
    Client,
    ConnectionLost,
    ConnectTimeout,
    MalformedAnswer,
    PoolTimeout,
    Response,
)
from llmrelay.providers.proxy import ProxyError
from llmrelay.providers.upstream import Upstream


class UpstreamClient:
    def __init__(self, connect_timeout: float, first_byte_timeout: float, idle_timeout: float = 120.0,
                 total_timeout: float = 1800.0, max_connections: int = MAX_CONNECTIONS_PER_HOST):
        self.connect_timeout = connect_timeout
        self.first_byte_timeout = first_byte_timeout
        self.idle_timeout = idle_timeout
        self.total_timeout = total_timeout
        self._client = Client(max_connections)

    async def open(self, upstreams: list[Upstream]) -> None:
        for upstream in upstreams:
            if upstream.max_connections:
                self._client.limit(upstream.chat_url, upstream.max_connections)
            else:
                self._client.pool(upstream.chat_url)

    async def close(self) -> None:
        self._client.close()

    def post(self, upstream: Upstream, body: bytes, headers: dict | list[bytes],
             url: str | None = None) -> Awaitable[Response]:
        """Send the request (to the chat URL unless told otherwise); the awaitable returns once the upstream's
        status and headers have arrived. A plain function handing back `request`'s coroutine: one coroutine
        fewer on the way of every proxied request."""
        return self.request("POST", upstream, url or upstream.chat_url, body, headers)

    async def request(self, method: str, upstream: Upstream, url: str, body: bytes | None,
                      headers: dict | list[bytes]) -> Response:
        connect_timeout = upstream.connect_timeout or self.connect_timeout
        first_byte_timeout = upstream.first_byte_timeout or self.first_byte_timeout
        try:
            return await self._client.request(method, url, headers, body, connect_timeout, first_byte_timeout,
                                              upstream.idle_timeout or self.idle_timeout,
                                              upstream.total_timeout or self.total_timeout)
        except PoolTimeout as exc:
            raise UpstreamTimeout(f"{_where(upstream)}: all {exc.limit} connections the node may open to it stayed "
                                  f"busy for {first_byte_timeout:g} s; raise max_connections for it or "
                                  "LLMRELAY_MAX_CONNECTIONS_PER_HOST") from None
        except ConnectTimeout:
            raise UpstreamTimeout(f"{_where(upstream)} did not accept a connection within {connect_timeout:g} s; "
                                  "check that it is running, or raise LLMRELAY_CONNECT_TIMEOUT") from None
        except TimeoutError:
            raise UpstreamTimeout(f"{_where(upstream)} did not start answering within {first_byte_timeout:g} s; raise "
                                  "LLMRELAY_FIRST_BYTE_TIMEOUT for slow models") from None
        except socket.gaierror:
            raise UpstreamUnavailable(f"the host name of {_where(upstream)} does not resolve; "
                                      f"check {upstream.setting}") from None
        except ssl.SSLCertVerificationError as exc:
            raise UpstreamUnavailable(f"the certificate of {_where(upstream)} could not be verified "
                                      f"({exc.verify_message or exc.reason}); check {upstream.setting}, or point "
                                      "SSL_CERT_FILE at the CA that signed it") from None
        except ProxyError as exc:
            raise UpstreamUnavailable(f"cannot reach {_where(upstream)}: {exc}; check HTTPS_PROXY, HTTP_PROXY and "
                                      "NO_PROXY") from None
        except MalformedAnswer as exc:
            raise UpstreamUnavailable(f"{_where(upstream)} answered in a way the node will not relay ({exc})") from None
        except ConnectionLost:
            raise UpstreamUnavailable(f"{_where(upstream)} closed the connection without answering; check that it is "
                                      "healthy") from None
        except OSError as exc:
            raise UpstreamUnavailable(f"cannot connect to {_where(upstream)} ({connect_failure(exc)}); check that "
                                      f"it is running and that {upstream.setting} is right") from None

    async def probe(self, upstream: Upstream, timeout: float) -> dict:
        """Whether the upstream answers HTTP at all, and with what, for /ready."""
        report = {"name": upstream.name, "url": upstream.display_url}
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                response = await self._client.request("GET", upstream.probe_url, upstream.headers(), None, timeout,
                                                      timeout)
                await response.read()
        except (TimeoutError, OSError) as exc:
            report.update(ready=False, error=_probe_failure(exc, timeout))
            return report
        report["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
        report["status"] = response.status
        if response.status in (401, 403):
            report.update(ready=False, error=f"the upstream refused the node's credentials; check {upstream.setting}")
        elif response.status >= 500:
            report.update(ready=False, error=f"the upstream answered with status {response.status}")
        else:
            report["ready"] = True
        return report


def _where(upstream: Upstream) -> str:
    return f"the {upstream.name} upstream at {upstream.display_url}"


def _probe_failure(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, socket.gaierror):
        return "the host name does not resolve"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"its certificate could not be verified ({exc.verify_message or exc.reason})"
    if isinstance(exc, ProxyError):
        return str(exc)
    return f"cannot connect ({connect_failure(exc)})"


def connect_failure(error: OSError) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return error.strerror or str(error) or type(error).__name__
