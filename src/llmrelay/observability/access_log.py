"""One access-log line per request, written by a background thread.

The request path only appends a tuple to a bounded deque; formatting and the write to stderr happen off the
event loop, in batches, and `close()` flushes what is left. If the writer ever falls this far behind, new
lines are dropped and counted rather than growing memory without bound.
"""

import sys
import threading
import time
from collections import deque

import orjson

from llmrelay.observability.log_format import text_value, timestamp

MAX_PENDING = 100_000
_FLUSH_INTERVAL = 0.05


class AccessLog:
    def __init__(self, log_format: str = "text", stream=None):
        self.json = log_format == "json"
        self.stream = stream or sys.stderr
        self.dropped = 0
        self._pending: deque = deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llmrelay-access-log", daemon=True)
        self._thread.start()

    def record(self, ex) -> None:
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1
            return
        duration_ms = (time.perf_counter() - ex.started) * 1000
        self._pending.append((time.time(), ex.method, ex.path, ex.model, ex.upstream, ex.status,
                              duration_ms, ex.bytes_out, ex.request_id, ex.error_type))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._write_pending()

    def _run(self) -> None:
        while not self._stop.wait(_FLUSH_INTERVAL):
            self._write_pending()

    def _write_pending(self) -> None:
        lines = []
        pending = self._pending
        while pending:
            lines.append(self._format(pending.popleft()))
        if self.dropped:
            lines.append(self._format_dropped())
            self.dropped = 0
        if lines:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()

    def _format(self, entry) -> str:
        at, method, path, model, upstream, status, duration_ms, size, request_id, error = entry
        if self.json:
            line = {"ts": timestamp(at), "level": "info", "logger": "llmrelay.access", "method": method,
                    "path": path, "model": model, "upstream": upstream, "status": status,
                    "duration_ms": round(duration_ms, 3), "bytes": size, "request_id": request_id}
            if error:
                line["error"] = error
            return orjson.dumps(line).decode()
        line = (f"{timestamp(at)} INFO    llmrelay.access: {method} {text_value(path)} "
                f"model={text_value(model or '-')} upstream={upstream or '-'} status={status} "
                f"duration_ms={duration_ms:.3f} bytes={size} request_id={text_value(request_id)}")
        return line + (f" error={error}" if error else "")

    def _format_dropped(self) -> str:
        message = f"the access log fell behind and dropped {self.dropped} lines"
        if self.json:
            return orjson.dumps({"ts": timestamp(time.time()), "level": "warning", "logger": "llmrelay.access",
                                 "message": message}).decode()
        return f"{timestamp(time.time())} WARNING llmrelay.access: {message}"
