"""The access log: one line per request, as text or JSON, written by the recorder's thread."""

import sys
import time

import orjson

from llmrelay.observability.log_format import text_value, timestamp
from llmrelay.observability.recorder import RequestRecord


class AccessLog:
    def __init__(self, log_format: str = "text", stream=None):
        self.json = log_format == "json"
        self.stream = stream or sys.stderr

    def __call__(self, records: list[RequestRecord], dropped: int) -> None:
        lines = [self._format(record) for record in records]
        if dropped:
            lines.append(self._format_dropped(dropped))
        if lines:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()

    def _format(self, r: RequestRecord) -> str:
        if self.json:
            line = {"ts": timestamp(r.at), "level": "info", "logger": "llmrelay.access", "method": r.method,
                    "path": r.path, "model": r.model, "upstream": r.upstream, "status": r.status,
                    "duration_ms": round(r.duration_ms, 3), "bytes": r.bytes_out, "request_id": r.request_id}
            if r.key_id:
                line["key"] = r.key_id
            if r.error_type:
                line["error"] = r.error_type
            return orjson.dumps(line).decode()
        line = (f"{timestamp(r.at)} INFO    llmrelay.access: {r.method} {text_value(r.path)} "
                f"model={text_value(r.model or '-')} upstream={r.upstream or '-'} status={r.status} "
                f"duration_ms={r.duration_ms:.3f} bytes={r.bytes_out} request_id={text_value(r.request_id)}")
        if r.key_id:
            line += f" key={r.key_id}"
        return line + (f" error={r.error_type}" if r.error_type else "")

    def _format_dropped(self, dropped: int) -> str:
        message = f"the node fell behind recording requests and dropped {dropped} records"
        if self.json:
            return orjson.dumps({"ts": timestamp(time.time()), "level": "warning", "logger": "llmrelay.access",
                                 "message": message}).decode()
        return f"{timestamp(time.time())} WARNING llmrelay.access: {message}"
