"""Requests per second and latency percentiles over the last minutes, for the dashboard.

A recorder consumer: per-second buckets filled on the recorder's thread, read by `/admin/stats`.
Each bucket keeps at most SAMPLES durations, so memory stays bounded whatever the load.
"""

import threading
import time

from llmrelay.observability.recorder import RequestRecord

KEEP_SECONDS = 600
SAMPLES = 500


class Timeline:
    def __init__(self):
        self._buckets: dict[int, list] = {}  # second -> [requests, errors, durations in ms]
        self._lock = threading.Lock()

    def __call__(self, records: list[RequestRecord], dropped: int) -> None:
        with self._lock:
            for r in records:
                if r.surface is None:
                    continue
                bucket = self._buckets.get(int(r.at))
                if bucket is None:
                    bucket = self._buckets[int(r.at)] = [0, 0, []]
                bucket[0] += 1
                bucket[1] += r.status >= 400
                if len(bucket[2]) < SAMPLES:
                    bucket[2].append(r.duration_ms)
            oldest = int(time.time()) - KEEP_SECONDS
            for second in [s for s in self._buckets if s < oldest]:
                del self._buckets[second]

    def snapshot(self, seconds: int) -> list[dict]:
        """One entry per second, oldest first, including seconds without requests."""
        now = int(time.time())
        with self._lock:
            buckets = {s: (b[0], b[1], sorted(b[2])) for s, b in self._buckets.items() if s > now - seconds}
        points = []
        for second in range(now - seconds + 1, now + 1):
            requests, errors, durations = buckets.get(second, (0, 0, []))
            points.append({"t": second, "requests": requests, "errors": errors,
                           "p50_ms": _percentile(durations, 0.50), "p95_ms": _percentile(durations, 0.95)})
        return points


def _percentile(ordered: list[float], share: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 3)
