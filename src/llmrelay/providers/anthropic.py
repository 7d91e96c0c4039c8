"""Anthropic's Messages API: `/v1/messages` under a base URL without `/v1`, as the official SDK's `base_url`
is. Streams are named server-sent events (message_start ... message_stop)."""

from collections.abc import AsyncIterator

import orjson

from llmrelay.core import json_depth
from llmrelay.core.chat import (
    Chat,
    ChatEvent,
    Finish,
    Message,
    ReasoningDelta,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from llmrelay.core.errors import BadRequest, UpstreamUnavailable
from llmrelay.providers.base import ChatProvider
from llmrelay.providers.upstream import Upstream
from llmrelay.providers.wire import json_data, sse_events

DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; clients of other APIs often leave it out
_STOP = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
         "model_context_window_exceeded": "length", "tool_use": "tool_calls", "refusal": "content_filter"}
_PLAIN_PARAMS = ("temperature", "top_p", "top_k")


def anthropic_upstream(api_key: str | None, base_url: str, version: str,
                       setting: str = "ANTHROPIC_API_KEY") -> Upstream:
    return Upstream(
        name="anthropic", base_url=base_url, chat_url=base_url + "/v1/messages", probe_url=base_url + "/v1/models",
        setting=setting, auth_headers=(("x-api-key", api_key),) if api_key else (),
        default_headers=(("anthropic-version", version),))


def _blocks(message: Message) -> list[dict]:
    blocks = []
    for part in message.content:
        if isinstance(part, TextPart):
            if part.text:
                blocks.append({"type": "text", "text": part.text})
        elif part.data is not None:
            blocks.append({"type": "image", "source": {"type": "base64", "media_type": part.media_type or "image/png",
                                                       "data": part.data}})
        else:
            blocks.append({"type": "image", "source": {"type": "url", "url": part.url}})
    return blocks


def _arguments_object(arguments: str):
    try:
        return json_depth.loads(arguments or "{}", "a tool call's arguments")
    except orjson.JSONDecodeError:
        raise BadRequest("a tool call's arguments are not valid JSON; Anthropic needs them as a JSON object") from None


def encode_messages(messages: list[Message]) -> list[dict]:
    """Anthropic's alternating user/assistant turns: tool results become user blocks, neighbours merge."""
    turns: list[dict] = []
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            role = "user"
            blocks = [{"type": "tool_result", "tool_use_id": message.tool_call_id or "", "content": message.text,
                       **({"is_error": True} if message.is_error else {})}]
        else:
            role = message.role
            blocks = _blocks(message)
            blocks += [{"type": "tool_use", "id": call.id, "name": call.name,
                        "input": _arguments_object(call.arguments)} for call in message.tool_calls]
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def encode_chat(chat: Chat, model: str, options: dict) -> tuple[dict, list[str]]:
    request: dict = {"model": model, "max_tokens": chat.params.get("max_tokens") or DEFAULT_MAX_TOKENS,
                     "messages": encode_messages(chat.messages), **options}
    if chat.system:
        request["system"] = chat.system
    unsupported = []
    for name, value in chat.params.items():
        if name in _PLAIN_PARAMS:
            request[name] = value
        elif name == "stop":
            request["stop_sequences"] = value
        elif name != "max_tokens":
            unsupported.append(name)  # seed, penalties, response_format: not in the Messages API
    if chat.tools:
        request["tools"] = [{"name": tool.name, "description": tool.description or "",
                             "input_schema": tool.parameters or {"type": "object"}} for tool in chat.tools]
    choice = chat.tool_choice
    if choice is not None and chat.tools:
        request["tool_choice"] = ({"type": "tool", "name": choice["name"]} if isinstance(choice, dict)
                                  else {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]})
    if chat.stream:
        request["stream"] = True
    unsupported.extend(chat.ollama_only_options())
    return request, unsupported


def _usage(data: dict) -> Usage:
    prompt = ((data.get("input_tokens") or 0) + (data.get("cache_creation_input_tokens") or 0)
              + (data.get("cache_read_input_tokens") or 0))
    return Usage(prompt, data.get("output_tokens") or 0)


def decode_response(data: dict) -> list[ChatEvent]:
    events: list[ChatEvent] = []
    tools = 0
    for block in data.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            events.append(TextDelta(block.get("text", "")))
        elif kind == "thinking":
            events.append(ReasoningDelta(block.get("thinking", "")))
        elif kind == "tool_use":
            events.append(ToolCallStart(tools, block.get("id", ""), block.get("name", "")))
            events.append(ToolCallDelta(tools, orjson.dumps(block.get("input") or {}).decode()))
            tools += 1
    events.append(Finish(_STOP.get(data.get("stop_reason"), "stop"), _usage(data.get("usage") or {})))
    return events


async def decode_stream(upstream: Upstream, events: AsyncIterator[tuple[str, str]]) -> AsyncIterator[ChatEvent]:
    usage = Usage()
    stop_reason = None
    tool_of_block: dict[int, int] = {}  # content block index -> tool call index
    async for name, data in events:
        event = json_data(upstream, data)
        kind = event.get("type", name)
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                yield TextDelta(delta.get("text", ""))
            elif delta.get("type") == "input_json_delta":
                if delta.get("partial_json"):
                    yield ToolCallDelta(tool_of_block[event.get("index", 0)], delta["partial_json"])
            elif delta.get("type") == "thinking_delta":
                yield ReasoningDelta(delta.get("thinking", ""))
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = tool_of_block[event.get("index", 0)] = len(tool_of_block)
                yield ToolCallStart(index, block.get("id", ""), block.get("name", ""))
            elif block.get("type") == "text" and block.get("text"):
                yield TextDelta(block["text"])
        elif kind == "message_start":
            usage = _usage((event.get("message") or {}).get("usage") or {})
        elif kind == "message_delta":
            stop_reason = (event.get("delta") or {}).get("stop_reason") or stop_reason
            counts = event.get("usage") or {}
            if counts.get("input_tokens") is not None:
                usage = _usage({**counts})
            usage.completion_tokens = counts.get("output_tokens", usage.completion_tokens)
        elif kind == "message_stop":
            yield Finish(_STOP.get(stop_reason, "stop"), usage)
            return
        elif kind == "error":
            error = event.get("error") or {}
            raise UpstreamUnavailable(f"the anthropic upstream failed mid-answer: {error.get('message', error)}")
    raise UpstreamUnavailable("the anthropic upstream ended its stream without message_stop; try again")


class AnthropicProvider(ChatProvider):
    kind = "anthropic"
    encode = encode_chat
    decode_response = decode_response
    decode_stream = decode_stream
    stream_records = sse_events
