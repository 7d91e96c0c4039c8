"""Cloudflare Workers AI: `POST {LLM_CF_URL}/{model}` with a Bearer token, as the Masa node called it.

Answers are `{"result": {"response", "tool_calls", "usage"}, "success", "errors", "messages"}`; streams are
server-sent events `data: {"response": "..."}` ending in `data: [DONE]`.
"""

from collections.abc import AsyncIterator

import orjson

from llmrelay.core import json_depth
from llmrelay.core.chat import (
    Chat,
    ChatEvent,
    Finish,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from llmrelay.core.errors import BadRequest, UpstreamUnavailable
from llmrelay.core.ids import tool_call_id
from llmrelay.providers.base import ChatProvider
from llmrelay.providers.model_path import model_path
from llmrelay.providers.upstream import Upstream
from llmrelay.providers.wire import json_data, sse_events

_PLAIN_PARAMS = ("temperature", "top_p", "top_k", "seed", "max_tokens", "presence_penalty", "frequency_penalty")


def cloudflare_upstream(token: str | None, base_url: str, setting: str = "LLM_CF_TOKEN") -> Upstream:
    return Upstream(name="cloudflare", base_url=base_url, chat_url=base_url, probe_url=base_url, setting=setting,
                    auth_headers=(("Authorization", f"Bearer {token}"),) if token else ())


_PATHS: dict[str, str] = {}  # model name -> its encoded path: one lookup per request after the first
_PATHS_KEPT = 1024  # names come from clients: forgotten all at once beyond this


def model_url(upstream: Upstream, model: str) -> str:
    """`{LLM_CF_URL}/{model}`, the name validated and encoded so that it never leaves `.../ai/run/`."""
    path = _PATHS.get(model)
    if path is None:
        path = model_path(model)  # raises BadRequest for a name that would change the URL
        if len(_PATHS) >= _PATHS_KEPT:
            _PATHS.clear()
        _PATHS[model] = path
    return upstream.base_url.rstrip("/") + "/" + path


def encode_chat(chat: Chat, model: str, options: dict) -> tuple[dict, list[str]]:
    messages = []
    for message in chat.messages:
        if message.images:
            raise BadRequest("the Cloudflare Workers AI chat models the node reaches take text only, not images")
        wire = {"role": message.role, "content": message.text}
        if message.tool_calls:
            wire["tool_calls"] = [{"name": call.name, "arguments": _arguments_object(call.arguments)}
                                  for call in message.tool_calls]
        if message.role == "tool" and message.tool_name:
            wire["name"] = message.tool_name
        messages.append(wire)
    request: dict = {"messages": messages, **options}
    unsupported = []
    for name, value in chat.params.items():
        if name in _PLAIN_PARAMS:
            request[name] = value
        else:
            unsupported.append(name)
    if chat.tools:
        request["tools"] = [{"name": tool.name, "description": tool.description or "", "parameters": tool.parameters}
                            for tool in chat.tools]
    if chat.tool_choice not in (None, "auto"):
        unsupported.append("tool_choice")
    if chat.stream:
        request["stream"] = True
    unsupported.extend(chat.ollama_only_options())
    return request, unsupported


def _arguments_object(arguments: str):
    try:
        return json_depth.loads(arguments or "{}", "a tool call's arguments")
    except orjson.JSONDecodeError:
        raise BadRequest("a tool call's arguments are not valid JSON; Cloudflare needs them as a JSON object") from None


def _text(response) -> str:
    """The answer's text; in JSON mode Workers AI sends the answer as an object, which the client gets as JSON."""
    return response if isinstance(response, str) else orjson.dumps(response).decode()


def _usage(data: dict | None) -> Usage | None:
    return Usage(data.get("prompt_tokens") or 0, data.get("completion_tokens") or 0) if data else None


def decode_response(data: dict) -> list[ChatEvent]:
    result = data.get("result") or {}
    events: list[ChatEvent] = []
    if result.get("response"):
        events.append(TextDelta(_text(result["response"])))
    calls = result.get("tool_calls") or ()
    for index, call in enumerate(calls):
        events.append(ToolCallStart(index, tool_call_id(), call.get("name", "")))
        arguments = call.get("arguments") or {}
        text = arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()
        events.append(ToolCallDelta(index, text))
    events.append(Finish("tool_calls" if calls else "stop", _usage(result.get("usage"))))
    return events


async def decode_stream(upstream: Upstream, events: AsyncIterator[tuple[str, str]]) -> AsyncIterator[ChatEvent]:
    usage = None
    async for _, data in events:
        if data.strip() == "[DONE]":
            yield Finish("stop", usage)
            return
        chunk = json_data(upstream, data)
        if chunk.get("response"):
            yield TextDelta(_text(chunk["response"]))
        usage = _usage(chunk.get("usage")) or usage
    raise UpstreamUnavailable("the cloudflare upstream ended its stream without [DONE]; try again")


class CloudflareProvider(ChatProvider):
    kind = "cloudflare"
    encode = encode_chat
    decode_response = decode_response
    decode_stream = decode_stream
    stream_records = sse_events

    def chat_url(self, upstream: Upstream, model: str) -> str:
        return model_url(upstream, model)
