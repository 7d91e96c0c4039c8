"""Ollama's native API: `/api/chat` (NDJSON streaming, streaming by default), `/api/embed`, `/api/tags`."""

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import orjson

from llmrelay.core import json_depth
from llmrelay.core.chat import (
    OLLAMA_OPTION_OF_PARAM,
    Chat,
    ChatEvent,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from llmrelay.core.errors import BadRequest, UpstreamUnavailable
from llmrelay.core.ids import tool_call_id
from llmrelay.providers.base import ChatProvider
from llmrelay.providers.upstream import Upstream, origin
from llmrelay.providers.wire import ndjson_records, post_for_json, read_json

CHAT_PATH = "/api/chat"



def ollama_upstream(chat_url: str, setting: str = "LLM_CHAT_URL") -> Upstream:
    """`chat_url` is Ollama's /api/chat URL (or any URL the operator gave as LLM_CHAT_URL)."""
    path = urlsplit(chat_url).path
    base = chat_url[: -len(CHAT_PATH)] if path.endswith(CHAT_PATH) else origin(chat_url)
    # /api/version is Ollama's cheapest endpoint; any HTTP answer proves the server is up.
    return Upstream(name="ollama", base_url=base, chat_url=chat_url, probe_url=base + "/api/version",
                    setting=setting)


def encode_chat(chat: Chat, model: str, options: dict) -> tuple[dict, list[str]]:
    """The /api/chat request for `chat`, and the names of what Ollama cannot take."""
    unsupported = []
    messages = []
    for message in chat.messages:
        wire: dict = {"role": message.role, "content": message.text}
        images = message.images
        if images:
            if any(image.data is None for image in images):
                raise BadRequest("Ollama takes images only as inline data (base64 or data: URLs), not as links")
            wire["images"] = [image.data for image in images]
        if message.tool_calls:
            wire["tool_calls"] = [{"function": {"name": call.name, "arguments": _arguments_object(call.arguments)}}
                                  for call in message.tool_calls]
        if message.role == "tool" and message.tool_name:
            wire["tool_name"] = message.tool_name
        messages.append(wire)
    request: dict = {"model": model, "messages": messages, "stream": chat.stream}
    merged = dict(options)
    merged.update(chat.ollama_options)
    for name, value in chat.params.items():
        if name in OLLAMA_OPTION_OF_PARAM:
            merged[OLLAMA_OPTION_OF_PARAM[name]] = value
        elif name == "response_format":
            request["format"] = "json" if value["type"] == "json" else value["schema"]
        else:
            unsupported.append(name)
    if merged:
        request["options"] = merged
    if chat.tools and chat.tool_choice != "none":
        request["tools"] = [{"type": "function", "function": {"name": tool.name, "description": tool.description or "",
                                                              "parameters": tool.parameters}} for tool in chat.tools]
        if chat.tool_choice not in (None, "auto"):
            unsupported.append("tool_choice")  # Ollama cannot force a tool
    return request, unsupported


def _arguments_object(arguments: str):
    try:
        return json_depth.loads(arguments or "{}", "a tool call's arguments")
    except orjson.JSONDecodeError:
        raise BadRequest("a tool call's arguments are not valid JSON; Ollama needs them as a JSON object") from None


def _finish(record: dict, had_tool_calls: bool) -> Finish:
    reason = "length" if record.get("done_reason") == "length" else "stop"
    if had_tool_calls:
        reason = "tool_calls"  # Ollama says "stop" even when the model called tools
    return Finish(reason, Usage(record.get("prompt_eval_count") or 0, record.get("eval_count") or 0))


def _message_events(message: dict, tool_index: int) -> list[ChatEvent]:
    events: list[ChatEvent] = []
    if message.get("thinking"):
        events.append(ReasoningDelta(message["thinking"]))
    if message.get("content"):
        events.append(TextDelta(message["content"]))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        events.append(ToolCallStart(tool_index, call.get("id") or tool_call_id(), function.get("name", "")))
        events.append(ToolCallDelta(tool_index, orjson.dumps(function.get("arguments") or {}).decode()))
        tool_index += 1
    return events


def decode_response(record: dict) -> list[ChatEvent]:
    events = _message_events(record.get("message") or {}, 0)
    events.append(_finish(record, any(isinstance(event, ToolCallStart) for event in events)))
    return events


async def decode_stream(upstream: Upstream, records: AsyncIterator[dict]) -> AsyncIterator[ChatEvent]:
    tool_calls = 0
    async for record in records:
        if "error" in record:
            raise UpstreamUnavailable(f"the ollama upstream failed mid-answer: {record['error']}")
        for event in _message_events(record.get("message") or {}, tool_calls):
            if isinstance(event, ToolCallStart):
                tool_calls += 1
            yield event
        if record.get("done"):
            yield _finish(record, tool_calls > 0)
            return
    raise UpstreamUnavailable("the ollama upstream ended its stream without a final record; try again")


class OllamaProvider(ChatProvider):
    kind = "ollama"
    encode = encode_chat
    decode_response = decode_response
    decode_stream = decode_stream
    stream_records = ndjson_records

    async def embed(self, upstream: Upstream, model: str, inputs: list[str], options: dict) -> tuple[list, int]:
        request = {"model": model, "input": inputs}
        if options:
            request["options"] = options
        record = await post_for_json(self.client, upstream, upstream.base_url + "/api/embed", request)
        return record.get("embeddings") or [], record.get("prompt_eval_count") or 0

    async def tags(self, upstream: Upstream) -> list[dict]:
        response = await self.client.request("GET", upstream, upstream.base_url + "/api/tags", None,
                                             upstream.headers())
        try:
            if response.status != 200:
                return []
            record = await read_json(upstream, response)
        finally:
            response.close()
        return [model for model in record.get("models") or () if isinstance(model, dict)]
