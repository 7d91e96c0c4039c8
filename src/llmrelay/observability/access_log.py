"""The access log: one line per request, as text or JSON, written by the recorder's thread."""

import sys
import time

import orjson

from llmrelay.observability.log_format import text_value, timestamp
from llmrelay.observability.recorder import RequestRecord

KNOWN_VALUES = 1024  # paths and model names whose safe text form is kept, up to KNOWN_LENGTH characters each
KNOWN_LENGTH = 200


class AccessLog:
    def __init__(self, log_format: str = "text", stream=None):
        self.json = log_format == "json"
        self.stream = stream or sys.stderr
        self._text: dict[str, str] = {}  # a path or model name -> its text_value (the same few, line after line)

    def _known(self, value: str) -> str:
        text = self._text.get(value)
        if text is None:
            text = text_value(value)
            if len(self._text) < KNOWN_VALUES and len(value) <= KNOWN_LENGTH:
                self._text[value] = text
        return text

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
        request_id = r.request_id  # the node's own ids are hex: no pattern to match
        line = (f"{timestamp(r.at)} INFO    llmrelay.access: {r.method} {self._known(r.path)} "
                f"model={self._known(r.model or '-')} upstream={r.upstream or '-'} status={r.status} "
                f"duration_ms={r.duration_ms:.3f} bytes={r.bytes_out} "
                f"request_id={request_id if request_id.isalnum() else text_value(request_id)}")
        if r.key_id:
            line += f" key={r.key_id}"
        return line + (f" error={r.error_type}" if r.error_type else "")

    def _format_dropped(self, dropped: int) -> str:
        message = f"the node fell behind recording requests and dropped {dropped} records"
        if self.json:
            return orjson.dumps({"ts": timestamp(time.time()), "level": "warning", "logger": "llmrelay.access",
                                 "message": message}).decode()
        return f"{timestamp(time.time())} WARNING llmrelay.access: {message}"
