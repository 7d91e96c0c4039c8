"""A small client of a running node, for the CLI's `chat`, `models`, `keys` and `usage`: standard library
only, so it works from any shell where llmrelay is installed."""

import json
import urllib.error
import urllib.request
from collections.abc import Iterator


class NodeError(Exception):
    pass


class NodeClient:
    def __init__(self, url: str, api_key: str | None = None, timeout: float = 600):
        self.url = url.rstrip("/")
        self.headers = {"content-type": "application/json"}
        if api_key:
            self.headers["authorization"] = f"Bearer {api_key}"
        self.timeout = timeout

    def _open(self, path: str, payload: dict | None = None, method: str | None = None):
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(self.url + path, data=data, headers=self.headers, method=method)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raise NodeError(_error_message(exc.read()) or f"HTTP {exc.code}") from None
        except urllib.error.URLError as exc:
            raise NodeError(f"cannot reach the node at {self.url} ({exc.reason}); "
                            "is `llmrelay serve` running?") from None

    def models(self) -> list[dict]:
        with self._open("/v1/models") as response:
            return json.load(response)["data"]

    def call(self, method: str, path: str, payload: dict | None = None):
        """One admin API call's JSON answer."""
        with self._open(path, payload, method) as response:
            return json.load(response)

    def chat(self, model: str, messages: list[dict]) -> Iterator[str]:
        """The answer's text pieces as the node streams them (Ollama's NDJSON /api/chat)."""
        with self._open("/api/chat", {"model": model, "messages": messages, "stream": True}) as response:
            for line in response:
                if not line.strip():
                    continue
                record = json.loads(line)
                if "error" in record:
                    error = record["error"]
                    raise NodeError(error if isinstance(error, str) else error.get("message", str(error)))
                yield (record.get("message") or {}).get("content", "")


def _error_message(body: bytes) -> str:
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return body.decode("utf-8", "replace")[:300]
    return error if isinstance(error, str) else (error or {}).get("message", "")
