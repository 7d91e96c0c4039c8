"""Token counts read from answers the node relays without translating them.

Each API reports usage in its own place: Ollama as `prompt_eval_count`/`eval_count` on the last record,
OpenAI as `usage.prompt_tokens`/`completion_tokens` (in a stream only with `stream_options.include_usage`),
Anthropic as `usage.input_tokens`/`output_tokens` (in a stream on `message_start` and `message_delta`),
Cloudflare under `result.usage`. A chunk is parsed only when it contains one of those names, so a stream
costs one substring search per chunk.
"""

import orjson


class TokenTap:
    """Watches an answer's bytes and keeps the latest counts it reports."""

    __slots__ = ("prompt", "completion", "events")

    def __init__(self):
        self.prompt: int | None = None
        self.completion: int | None = None
        self.events = 0  # SSE data events seen: the estimate when a stream reports no usage

    def whole(self, data: bytes) -> None:
        if _mentions_usage(data):
            self._read(_loads(data))

    def chunk(self, chunk: bytes) -> None:
        self.events += chunk.count(b"data:")
        if not _mentions_usage(chunk):
            return
        for line in chunk.split(b"\n"):
            if line.startswith(b"data:"):
                line = line[5:]
            if _mentions_usage(line):
                self._read(_loads(line))

    @property
    def found(self) -> bool:
        return self.prompt is not None or self.completion is not None

    def _read(self, record) -> None:
        if not isinstance(record, dict):
            return
        if "eval_count" in record or "prompt_eval_count" in record:  # Ollama
            self._keep(record.get("prompt_eval_count"), record.get("eval_count"))
        usage = record.get("usage")
        if usage is None and isinstance(record.get("message"), dict):  # Anthropic's message_start
            usage = record["message"].get("usage")
        if usage is None and isinstance(record.get("result"), dict):  # Cloudflare
            usage = record["result"].get("usage")
        if not isinstance(usage, dict):
            return
        if "input_tokens" in usage or "output_tokens" in usage:  # Anthropic: cached input counts as input
            prompt = usage.get("input_tokens")
            if prompt is not None:
                prompt += (usage.get("cache_creation_input_tokens") or 0) + (usage.get("cache_read_input_tokens")
                                                                             or 0)
            self._keep(prompt, usage.get("output_tokens"))
        else:
            self._keep(usage.get("prompt_tokens"), usage.get("completion_tokens"))

    def _keep(self, prompt, completion) -> None:
        if isinstance(prompt, int):
            self.prompt = prompt
        if isinstance(completion, int):
            self.completion = completion


def _mentions_usage(data: bytes) -> bool:
    # `eval_count"` also finds `prompt_eval_count"`. find(), not `in`: on bytes, `in` first tries its operand
    # as an integer and raises and swallows a TypeError (CPython 3.11), which costs more than the search.
    return data.find(b'"usage"') >= 0 or data.find(b'eval_count"') >= 0


def _loads(data: bytes):
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
