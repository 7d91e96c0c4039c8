"""The node's log lines, as text or as JSON lines (`--log-format json`), for its own and uvicorn's logs."""

import logging
import re
import time

import orjson

_PLAIN = re.compile(r"[\w.:/@+-]+")


_second = -1
_second_text = ""


def timestamp(epoch: float) -> str:
    """ISO 8601 UTC with milliseconds; the seconds part is formatted once a second, not once a line."""
    global _second, _second_text
    whole = int(epoch)
    if whole != _second:
        _second, _second_text = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second_text}.{int((epoch - whole) * 1000):03d}Z"


def text_value(value) -> str:
    """A value safe to put in a text line: client-chosen strings cannot forge fields or lines."""
    text = str(value)
    return text if _PLAIN.fullmatch(text) else orjson.dumps(text).decode()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": timestamp(record.created), "level": record.levelname.lower(), "logger": record.name,
                "message": record.getMessage()}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = f"{timestamp(record.created)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """Route the node's and uvicorn's loggers to stderr in the chosen format."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    for name in ("llmrelay", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # the node writes its own access log
