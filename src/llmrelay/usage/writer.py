"""Usage records: one row per model request, written to the database in batches on a thread of its own.

A slow or unreachable database never holds up a request, nor the access log: rows wait here (up to
MAX_PENDING; beyond that new rows are dropped and counted) and a failed batch is retried whole on the
next round. `close()` writes everything still waiting, so a node stopped with SIGTERM loses nothing.
"""

import logging
import os
import sys
import threading
from collections import deque

from llmrelay.observability.recorder import RequestRecord
from llmrelay.storage.database import Database, describe_error

log = logging.getLogger("llmrelay")

MAX_PENDING = 1_000_000
BATCH = 1000
INTERVAL = 0.5
CLOSE_ATTEMPTS = 5


def usage_row(r: RequestRecord) -> tuple:
    # Durations to the microsecond by arithmetic: round(x, 3) formats and parses the float (~2,000 instructions).
    return (r.at, r.request_id, r.key_id, r.surface, r.model, r.provider, r.deployment, r.status,
            r.prompt_tokens, r.completion_tokens, r.tokens_estimated,
            None if r.ttft_ms is None else int(r.ttft_ms * 1000 + 0.5) / 1000, int(r.duration_ms * 1000 + 0.5) / 1000,
            r.error_type)


NICER_BY = 10
IDLE_BATCH = 100  # rows per batch at the idle priority: the most a writer taking over may wait for
CATCH_UP = 20 * BATCH  # rows waiting beyond which a writer at a working priority takes over


def _on_idle_cores() -> bool:
    """Run this thread only on a core nothing else wants (SCHED_IDLE; on Linux each thread has its own policy).
    False where that cannot be set (another system, a seccomp filter)."""
    if not sys.platform.startswith("linux"):
        return False  # elsewhere a thread id is no process id: the call could reach another process
    try:
        os.sched_setscheduler(threading.get_native_id(), os.SCHED_IDLE, os.sched_param(0))
    except OSError:
        return False
    return True


def give_way_to_requests() -> None:
    """Lower this thread's CPU priority by NICER_BY (on Linux each thread has its own nice value)."""
    if not sys.platform.startswith("linux"):
        return  # elsewhere a thread id is no process id: setpriority could reach another process
    try:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + NICER_BY)
    except OSError:
        pass  # not allowed here: the writer keeps the node's priority


class UsageWriter:
    """Rows are written by one thread at a time, on idle cores when it can.

    The database's work runs without the GIL on whichever core is free, which on a busy machine is often the
    one a request's next step wants; at idle priority it takes the tail latency of requests the least
    (bench/README.md). A thread at idle priority gets almost no time on a saturated machine, and without
    privileges cannot leave that policy, so when CATCH_UP rows wait the recorder's thread starts a writer 10
    nice levels below the loop that takes over once the idle one has finished its batch, and moves itself to
    the idle cores once caught up. The recorder's own thread keeps its priority: it holds the GIL, and the loop
    must not wait behind it while it is descheduled.
    """

    def __init__(self, database: Database):
        self.database = database
        self.written = 0
        self.dropped = 0
        self._rows: deque[tuple] = deque()  # appended by the recorder's thread, taken by the writing one
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._failing = False
        self._idle = False  # the writer runs on idle cores (else it is one taking over)
        self._thread: threading.Thread
        self._start_writer(None)

    def _start_writer(self, previous: threading.Thread | None) -> None:
        self._thread = threading.Thread(target=self._run, args=(previous,), name="llmrelay-usage", daemon=True)
        self._thread.start()

    def __call__(self, records: list[RequestRecord], dropped: int) -> None:
        """A recorder consumer: queue the model requests among `records`."""
        rows = [usage_row(r) for r in records if r.surface is not None]
        if not rows:
            return
        room = MAX_PENDING - len(self._rows)
        if room < len(rows):
            self.dropped += len(rows) - max(0, room)
            rows = rows[:max(0, room)]
        self._rows.extend(rows)
        if len(self._rows) >= CATCH_UP and self._idle and not self._failing and not self._stop.is_set():
            self._idle = False
            self._start_writer(self._thread)  # from this thread: a new one inherits its (working) priority
        if len(self._rows) >= BATCH:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._rows)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        for _ in range(CLOSE_ATTEMPTS):
            if not self._rows or not self._write_batch(BATCH):
                break
        if self._rows:
            log.error("%d usage records could not be written to %s before the node stopped",
                      len(self._rows), self.database.display)
        if self.dropped:
            log.error("%d usage records were dropped: the database fell too far behind", self.dropped)

    def _run(self, previous: threading.Thread | None) -> None:
        if previous is not None:  # taking over from a writer on idle cores that fell behind
            give_way_to_requests()
            previous.join()  # one writer at a time: it ends after the batch it holds (IDLE_BATCH rows at most)
        elif _on_idle_cores():
            self._idle = True
        else:
            give_way_to_requests()
        this = threading.current_thread()
        while self._thread is this:
            while self._rows and self._thread is this and not self._stop.is_set():
                if not self._write_batch(IDLE_BATCH if self._idle else BATCH):
                    break  # the database fails: the rows wait for the next round
                if not self._idle and previous is not None and len(self._rows) < BATCH:
                    self._idle = _on_idle_cores()  # caught up: back to the idle cores
            if self._stop.is_set():
                return  # close() writes what is left
            self._wake.wait(INTERVAL)
            self._wake.clear()

    def _write_batch(self, size: int) -> bool:
        """Write up to `size` rows; True when they landed."""
        batch = [self._rows[i] for i in range(min(size, len(self._rows)))]
        try:
            self.database.insert_usage(batch)
        except Exception as exc:  # noqa: BLE001 - keep the rows and try again next round
            if not self._failing:
                log.warning("cannot write usage records to %s (%s); they wait in memory and are retried",
                            self.database.display, describe_error(exc))
            self._failing = True
            return False
        if self._failing:
            log.info("usage records are being written to %s again", self.database.display)
        self._failing = False
        for _ in batch:
            self._rows.popleft()
        self.written += len(batch)
        return True
