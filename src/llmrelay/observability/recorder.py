"""One record per finished request, handed to the access log, the metrics and the usage writer on a
background thread.

The request path only builds a tuple and appends it to a bounded deque; formatting log lines, updating
Prometheus metrics and queueing usage rows happen off the event loop, in batches, and `close()` hands over
what is left. If the thread ever falls this far behind, new records are dropped and counted rather than
growing memory without bound.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

log = logging.getLogger("llmrelay")

MAX_PENDING = 100_000
_INTERVAL = 0.05
SLICE = 32  # records handed to the consumers at a time


class RequestRecord(NamedTuple):
    at: float  # wall-clock time the answer finished
    method: str
    path: str
    surface: str | None  # the API spoken: "openai", "anthropic", "ollama", "passthrough"; None: not a model call
    model: str | None
    upstream: str | None
    provider: str | None
    deployment: str | None
    key_id: str | None
    status: int
    duration_ms: float
    ttft_ms: float | None  # first byte of the answer's body
    upstream_ms: float | None  # from the attempt that answered to the end of its answer
    bytes_out: int
    request_id: str
    error_type: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    tokens_estimated: bool

    @classmethod
    def of(cls, ex, surface: str | None) -> "RequestRecord":
        """The record of a finished request (an asgi.Exchange)."""
        ended = time.perf_counter()
        deployment = ex.deployment
        return cls(
            time.time(), ex.method, ex.path, surface, ex.model, ex.upstream,
            deployment.provider if deployment else ex.upstream, deployment.label if deployment else ex.upstream,
            ex.key.id if ex.key is not None else None, ex.status, (ended - ex.started) * 1000,
            # time to the first token: only answers have one (an error's body is not a token)
            (ex.first_out - ex.started) * 1000 if ex.first_out and ex.status < 400 else None,
            (time.monotonic() - ex.leases[-1].started) * 1000 if ex.leases else None,
            ex.bytes_out, ex.request_id, ex.error_type, ex.prompt_tokens, ex.completion_tokens, ex.tokens_estimated)


Consumer = Callable[[list[RequestRecord], int], None]  # (records, records dropped since the last batch)


class Recorder:
    def __init__(self, consumers: list[Consumer]):
        self.consumers = consumers
        self.dropped = 0
        self._pending: deque[RequestRecord] = deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llmrelay-recorder", daemon=True)
        self._thread.start()

    def record(self, record: RequestRecord) -> None:
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1
            return
        self._pending.append(record)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._hand_over()

    def _run(self) -> None:
        while not self._stop.wait(_INTERVAL):
            self._hand_over()

    def _hand_over(self) -> None:
        pending = self._pending
        while True:
            records = [pending.popleft() for _ in range(min(SLICE, len(pending)))]
            dropped, self.dropped = self.dropped, 0
            if not records and not dropped:
                return
            for consumer in self.consumers:
                try:
                    consumer(records, dropped)
                except Exception:  # noqa: BLE001 - one broken consumer must not silence the others
                    log.exception("recording %d requests failed", len(records))
            # Let the event loop have the GIL between slices: it would otherwise wait for the interpreter's
            # switch interval (5 ms) whenever it has a request to answer while this thread works.
            time.sleep(0)


