"""OpenAI and OpenAI-compatible servers (vLLM, llama.cpp's server, LM Studio, Groq, Together, OpenRouter,
DeepSeek, ...): `/chat/completions` and `/embeddings` under a base URL that includes `/v1`, as the official
SDK's `base_url` does."""

from collections.abc import AsyncIterator

from llmrelay.core.chat import (
    Chat,
    ChatEvent,
    Finish,
    ReasoningDelta,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from llmrelay.core.errors import UpstreamUnavailable
from llmrelay.core.ids import tool_call_id
from llmrelay.providers.base import ChatProvider
from llmrelay.providers.upstream import Upstream
from llmrelay.providers.wire import json_data, post_for_json, sse_events

_PLAIN_PARAMS = ("temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty")
# Reasoning models take max_completion_tokens and refuse max_tokens.
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "function_call": "tool_calls",
           "content_filter": "content_filter"}


def openai_upstream(api_key: str | None, base_url: str, setting: str = "OPENAI_API_KEY") -> Upstream:
    return Upstream(
        name="openai", base_url=base_url, chat_url=base_url + "/chat/completions", probe_url=base_url + "/models",
        setting=setting, auth_headers=(("Authorization", f"Bearer {api_key}"),) if api_key else ())


def _content(message) -> str | list:
    if not message.images:
        return message.text
    parts = []
    for part in message.content:
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        else:
            url = part.url or f"data:{part.media_type or 'image/png'};base64,{part.data}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def encode_chat(chat: Chat, model: str, options: dict) -> tuple[dict, list[str]]:
    messages = []
    for message in chat.messages:
        if message.role == "tool":
            messages.append({"role": "tool", "tool_call_id": message.tool_call_id or "", "content": message.text})
            continue
        wire: dict = {"role": message.role, "content": _content(message)}
        if message.tool_calls:
            wire["content"] = wire["content"] or None
            wire["tool_calls"] = [{"id": call.id, "type": "function",
                                   "function": {"name": call.name, "arguments": call.arguments or "{}"}}
                                  for call in message.tool_calls]
        messages.append(wire)
    request: dict = {"model": model, "messages": messages, **options}
    unsupported = []
    for name, value in chat.params.items():
        if name in _PLAIN_PARAMS:
            request[name] = value
        elif name == "max_tokens":
            request["max_completion_tokens" if model.startswith(_REASONING_PREFIXES) else "max_tokens"] = value
        elif name == "response_format":
            request["response_format"] = (
                {"type": "json_object"} if value["type"] == "json"
                else {"type": "json_schema", "json_schema": {"name": value.get("name") or "response",
                                                             "schema": value["schema"]}})
        else:
            unsupported.append(name)  # top_k: not in OpenAI's API
    if chat.tools:
        request["tools"] = [{"type": "function", "function": {"name": tool.name, "description": tool.description or "",
                                                              "parameters": tool.parameters}} for tool in chat.tools]
    if chat.tool_choice is not None:
        request["tool_choice"] = (chat.tool_choice if isinstance(chat.tool_choice, str)
                                  else {"type": "function", "function": {"name": chat.tool_choice["name"]}})
    if chat.stream:
        request["stream"] = True
        request["stream_options"] = {"include_usage": True}  # always: usage is recorded for every request
    unsupported.extend(chat.ollama_only_options())
    return request, unsupported


def _usage(data: dict | None) -> Usage | None:
    if not data:
        return None
    return Usage(data.get("prompt_tokens") or 0, data.get("completion_tokens") or 0)


def decode_response(data: dict) -> list[ChatEvent]:
    choices = data.get("choices") or [{}]
    message = choices[0].get("message") or {}
    events: list[ChatEvent] = []
    if message.get("reasoning_content"):
        events.append(ReasoningDelta(message["reasoning_content"]))
    if message.get("content"):
        events.append(TextDelta(message["content"]))
    for index, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") or {}
        events.append(ToolCallStart(index, call.get("id") or tool_call_id(), function.get("name", "")))
        events.append(ToolCallDelta(index, function.get("arguments") or "{}"))
    events.append(Finish(_FINISH.get(choices[0].get("finish_reason"), "stop"), _usage(data.get("usage"))))
    return events


async def decode_stream(upstream: Upstream, events: AsyncIterator[tuple[str, str]]) -> AsyncIterator[ChatEvent]:
    finish_reason = None
    usage = None
    calls: dict[int, int] = {}  # the upstream's tool-call index -> ours
    async for _, data in events:
        if data.strip() == "[DONE]":
            break
        chunk = json_data(upstream, data)
        if "error" in chunk:
            error = chunk["error"]
            detail = error.get("message") if isinstance(error, dict) else error
            raise UpstreamUnavailable(f"the openai upstream failed mid-answer: {detail}")
        usage = _usage(chunk.get("usage")) or usage
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                yield ReasoningDelta(delta["reasoning_content"])
            # A chunk may carry text and tool calls together: both are relayed, text first.
            if delta.get("content"):
                yield TextDelta(delta["content"])
            for call in delta.get("tool_calls") or ():
                upstream_index = call.get("index", len(calls))
                function = call.get("function") or {}
                if upstream_index not in calls:
                    calls[upstream_index] = len(calls)
                    yield ToolCallStart(calls[upstream_index], call.get("id") or tool_call_id(),
                                        function.get("name", ""))
                if function.get("arguments"):
                    yield ToolCallDelta(calls[upstream_index], function["arguments"])
            if choice.get("finish_reason"):
                finish_reason = _FINISH.get(choice["finish_reason"], "stop")
    if finish_reason is None:
        raise UpstreamUnavailable("the openai upstream ended its stream without a finish reason; try again")
    yield Finish(finish_reason, usage)


class OpenAIProvider(ChatProvider):
    kind = "openai"
    encode = encode_chat
    decode_response = decode_response
    decode_stream = decode_stream
    stream_records = sse_events

    async def embed(self, upstream: Upstream, model: str, inputs: list[str], options: dict) -> tuple[list, int]:
        data = await post_for_json(self.client, upstream, upstream.base_url + "/embeddings",
                                   {"model": model, "input": inputs, **options})
        vectors = [item.get("embedding") for item in sorted(data.get("data") or (), key=lambda i: i.get("index", 0))]
        return vectors, (data.get("usage") or {}).get("prompt_tokens") or 0
