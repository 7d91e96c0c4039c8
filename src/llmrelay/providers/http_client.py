"""The node's HTTP client for upstreams: one pooled keep-alive session per upstream, opened at start.

Turns every way an upstream call can fail before the answer starts into the node's errors, with a
message that names the upstream (never its credentials) and the setting that governs it.
"""

import asyncio
import time

import aiohttp

from llmrelay.core.errors import UpstreamTimeout, UpstreamUnavailable
from llmrelay.providers.upstream import Upstream, origin


class UpstreamClient:
    def __init__(self, connect_timeout: float, first_byte_timeout: float):
        self.connect_timeout = connect_timeout
        self.first_byte_timeout = first_byte_timeout
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    async def open(self, upstreams: list[Upstream]) -> None:
        for upstream in upstreams:
            self._session(upstream)

    def _session(self, upstream: Upstream) -> aiohttp.ClientSession:
        """The pooled session for the upstream's host; opened at start for every configured upstream."""
        key = origin(upstream.chat_url)
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=60, enable_cleanup_closed=True),
                # The first-byte limit is applied around each call; body reads are bounded per stream.
                timeout=aiohttp.ClientTimeout(total=None, connect=self.connect_timeout),
                cookie_jar=aiohttp.DummyCookieJar(),  # never carry one client's cookies to the next
                auto_decompress=False,  # bytes pass through as the upstream sent them
                skip_auto_headers=("Accept-Encoding",),
            )
        return session

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()

    async def post(self, upstream: Upstream, body: bytes, headers: dict[str, str],
                   url: str | None = None) -> aiohttp.ClientResponse:
        """Send the request (to the chat URL unless told otherwise) and return once the upstream's status and
        headers have arrived."""
        return await self.request("POST", upstream, url or upstream.chat_url, body, headers)

    async def request(self, method: str, upstream: Upstream, url: str, body: bytes | None,
                      headers: dict[str, str]) -> aiohttp.ClientResponse:
        session = self._session(upstream)
        connect_timeout = upstream.connect_timeout or self.connect_timeout
        first_byte_timeout = upstream.first_byte_timeout or self.first_byte_timeout
        timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout)
        for attempt in (1, 2):
            try:
                async with asyncio.timeout(first_byte_timeout):
                    return await session.request(method, url, data=body, headers=headers, timeout=timeout)
            except aiohttp.ServerDisconnectedError:
                # A pooled keep-alive connection the upstream had already closed; one fresh try is safe
                # because the upstream never answered on it.
                if attempt == 2:
                    raise UpstreamUnavailable(
                        f"the {upstream.name} upstream at {upstream.display_url} closed the connection without "
                        "answering; check that it is healthy") from None
            except aiohttp.ConnectionTimeoutError:
                raise UpstreamTimeout(
                    f"the {upstream.name} upstream at {upstream.display_url} did not accept a connection within "
                    f"{connect_timeout:g} s; check that it is running, or raise LLMRELAY_CONNECT_TIMEOUT"
                ) from None
            except TimeoutError:
                raise UpstreamTimeout(
                    f"the {upstream.name} upstream at {upstream.display_url} did not start answering within "
                    f"{first_byte_timeout:g} s; raise LLMRELAY_FIRST_BYTE_TIMEOUT for slow models"
                ) from None
            except aiohttp.ClientConnectorDNSError:
                raise UpstreamUnavailable(
                    f"the host name of the {upstream.name} upstream at {upstream.display_url} does not resolve; "
                    f"check {upstream.setting}") from None
            except aiohttp.ClientConnectorError as exc:
                raise UpstreamUnavailable(
                    f"cannot connect to the {upstream.name} upstream at {upstream.display_url} "
                    f"({connect_failure(exc.os_error)}); check that it is running and that "
                    f"{upstream.setting} is right") from None
            except aiohttp.ClientError as exc:
                raise UpstreamUnavailable(
                    f"the {upstream.name} upstream at {upstream.display_url} failed before answering "
                    f"({type(exc).__name__}); check that it is healthy") from None
        raise AssertionError("unreachable")

    async def probe(self, upstream: Upstream, timeout: float) -> dict:
        """Whether the upstream answers HTTP at all, and with what, for /ready."""
        session = self._session(upstream)
        headers = upstream.headers()
        report = {"name": upstream.name, "url": upstream.display_url}
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                async with session.get(upstream.probe_url, headers=headers) as response:
                    await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
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


def _probe_failure(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "the host name does not resolve"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({connect_failure(exc.os_error)})"
    return type(exc).__name__


def connect_failure(error: OSError) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return error.strerror or str(error)
