"""Upstream probes for `/ready`, shared: at most one probe per upstream per second, whoever asks.

`/ready` is open to anyone; without this, each call would make the node probe every upstream, so a caller
could turn the node into a load generator against its own upstreams.
"""

import asyncio
import time

from llmrelay.providers.http_client import UpstreamClient
from llmrelay.providers.upstream import Upstream

FRESH_SECONDS = 1.0


class ProbeCache:
    def __init__(self, client: UpstreamClient, timeout: float, fresh_seconds: float = FRESH_SECONDS):
        self.client = client
        self.timeout = timeout
        self.fresh_seconds = fresh_seconds
        # Keyed by the upstream itself: two deployments of one URL with different credentials are two probes.
        self._reports: dict[Upstream, tuple[float, dict]] = {}  # -> (when probed, report)
        self._running: dict[Upstream, asyncio.Future] = {}  # -> the probe in progress

    async def reports(self, upstreams: list[Upstream]) -> list[dict]:
        return list(await asyncio.gather(*(self.report(upstream) for upstream in upstreams)))

    async def report(self, upstream: Upstream) -> dict:
        key = upstream
        cached = self._reports.get(key)
        if cached is not None and time.monotonic() - cached[0] < self.fresh_seconds:
            return cached[1]
        running = self._running.get(key)
        if running is None:
            running = self._running[key] = asyncio.ensure_future(self._probe(upstream))
        # Shielded: one caller that goes away must not cancel the probe the others wait for.
        return await asyncio.shield(running)

    async def _probe(self, upstream: Upstream) -> dict:
        key = upstream
        try:
            report = await self.client.probe(upstream, self.timeout)
            self._reports[key] = (time.monotonic(), report)
            return report
        finally:
            del self._running[key]
