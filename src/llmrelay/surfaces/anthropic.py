"""The Anthropic Messages API: `POST /v1/messages` and `POST /v1/messages/count_tokens`."""

import orjson

from llmrelay.asgi import Exchange
from llmrelay.core import json_depth
from llmrelay.core.chat import (
    Chat,
    Completion,
    Finish,
    ImagePart,
    Message,
    ReasoningDelta,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
)
from llmrelay.core.errors import BadRequest, RelayError
from llmrelay.core.ids import message_id
from llmrelay.relay.forwarding import forward, sse_boundary
from llmrelay.surfaces.chat_surface import ChatSurface, StreamEncoder
from llmrelay.surfaces.decoding import (
    expect,
    image_from_url,
    json_object,
    model_of,
    name_tool_results,
    optional_number,
)

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
_UNTRANSLATED_OK = {"metadata", "service_tier"}
_KNOWN = {"model", "messages", "system", "max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences",
          "tools", "tool_choice", *_UNTRANSLATED_OK}
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 503: "overloaded_error"}


def decode_request(request: dict) -> Chat:
    messages: list[Message] = []
    system = request.get("system")
    if system is not None:
        messages.append(Message("system", [TextPart(_text_of(system, "system"))]))
    for index, item in enumerate(expect(request.get("messages"), list, "messages", "a list of messages")):
        messages.extend(_messages(item, index))
    if request.get("max_tokens") is None:
        raise BadRequest("max_tokens: Field required")
    chat = Chat(model=request["model"], messages=name_tool_results(messages), stream=bool(request.get("stream")))
    chat.params["max_tokens"] = expect(request["max_tokens"], int, "max_tokens", "an integer")
    for name in ("temperature", "top_p", "top_k"):
        if optional_number(request, name) is not None:
            chat.params[name] = request[name]
    if request.get("stop_sequences"):
        chat.params["stop"] = expect(request["stop_sequences"], list, "stop_sequences", "a list of strings")
    chat.tools = [_tool(item, index) for index, item in enumerate(request.get("tools") or ())]
    choice = request.get("tool_choice")
    if choice is not None:
        kind = expect(choice, dict, "tool_choice", "an object").get("type")
        chat.tool_choice = {"auto": "auto", "any": "required", "none": "none"}.get(kind) or {"name": choice.get("name")}
        if kind not in ("auto", "any", "none", "tool"):
            raise BadRequest("tool_choice.type must be auto, any, tool or none")
    chat.untranslated = [name for name in request if name not in _KNOWN]
    return chat


def _text_of(value, where: str) -> str:
    if isinstance(value, str):
        return value
    blocks = expect(value, list, where, "a string or a list of text blocks")
    return "".join(block.get("text", "") for block in blocks if isinstance(block, dict) and block.get("type") == "text")


def _image(block: dict, where: str) -> ImagePart:
    source = expect(block.get("source"), dict, f"{where}.source", "an object")
    if source.get("type") == "base64":
        data = expect(source.get("data"), str, f"{where}.source.data", "base64 text")
        return ImagePart(media_type=source.get("media_type"), data=data)
    if source.get("type") == "url":
        return image_from_url(source.get("url"), f"{where}.source.url")
    raise BadRequest(f"{where}.source.type must be base64 or url")


def _messages(item, index: int) -> list[Message]:
    """One Anthropic turn; tool results become separate tool messages, before the rest of the turn."""
    where = f"messages[{index}]"
    role = expect(item, dict, where, "an object").get("role")
    if role not in ("user", "assistant"):
        raise BadRequest(f"{where}.role must be user or assistant")
    content = item.get("content")
    if isinstance(content, str):
        return [Message(role, [TextPart(content)])]
    results: list[Message] = []
    message = Message(role)
    for block_index, block in enumerate(expect(content, list, f"{where}.content", "a string or a list of blocks")):
        at = f"{where}.content[{block_index}]"
        kind = expect(block, dict, at, "an object").get("type")
        if kind == "text":
            message.content.append(TextPart(expect(block.get("text"), str, f"{at}.text", "a string")))
        elif kind == "image":
            message.content.append(_image(block, at))
        elif kind == "tool_use" and role == "assistant":
            message.tool_calls.append(ToolCall(block.get("id") or "", block.get("name") or "",
                                               orjson.dumps(block.get("input") or {}).decode()))
        elif kind == "tool_result" and role == "user":
            results.append(Message("tool", [TextPart(_text_of(block.get("content") or "", f"{at}.content"))],
                                   tool_call_id=block.get("tool_use_id"), is_error=bool(block.get("is_error"))))
        elif kind in ("thinking", "redacted_thinking") and role == "assistant":
            continue  # earlier reasoning is not sent back to other providers
        else:
            raise BadRequest(f"{at}.type {kind!r} is not supported in a {role} message")
    if message.content or message.tool_calls:
        results.append(message)
    return results


def _tool(item, index: int) -> Tool:
    expect(item, dict, f"tools[{index}]", "an object")
    name = expect(item.get("name"), str, f"tools[{index}].name", "a string")
    return Tool(name, item.get("description"), item.get("input_schema") or {"type": "object", "properties": {}})


def error_payload(error: RelayError) -> dict:
    kind = _ERROR_TYPES.get(error.status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": error.message}}


def _event(name: str, payload: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class AnthropicStreamEncoder(StreamEncoder):
    def __init__(self, chat: Chat):
        self.model = chat.model
        self.block = -1  # index of the open content block
        self.block_kind: str | None = None

    def head(self) -> bytes:
        message = {"id": message_id(), "type": "message", "role": "assistant", "model": self.model, "content": [],
                   "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}
        return _event("message_start", {"type": "message_start", "message": message}) + _event("ping", {"type": "ping"})

    def _open(self, kind: str, block: dict) -> bytes:
        data = self._close()
        self.block += 1
        self.block_kind = kind
        return data + _event("content_block_start", {"type": "content_block_start", "index": self.block,
                                                     "content_block": block})

    def _close(self) -> bytes:
        if self.block_kind is None:
            return b""
        self.block_kind = None
        return _event("content_block_stop", {"type": "content_block_stop", "index": self.block})

    def _delta(self, delta: dict) -> bytes:
        return _event("content_block_delta", {"type": "content_block_delta", "index": self.block, "delta": delta})

    def event(self, event) -> bytes:
        if isinstance(event, TextDelta):
            data = b"" if self.block_kind == "text" else self._open("text", {"type": "text", "text": ""})
            return data + self._delta({"type": "text_delta", "text": event.text})
        if isinstance(event, ToolCallStart):
            return self._open("tool_use", {"type": "tool_use", "id": event.id, "name": event.name, "input": {}})
        if isinstance(event, ToolCallDelta):
            return self._delta({"type": "input_json_delta", "partial_json": event.arguments})
        if isinstance(event, ReasoningDelta):
            data = (b"" if self.block_kind == "thinking"
                    else self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""}))
            return data + self._delta({"type": "thinking_delta", "thinking": event.text})
        if isinstance(event, Finish):
            usage = event.usage
            counts = {"input_tokens": usage.prompt_tokens if usage else 0,
                      "output_tokens": usage.completion_tokens if usage else 0}
            return (self._close()
                    + _event("message_delta", {"type": "message_delta", "delta": {
                        "stop_reason": _STOP.get(event.reason, "end_turn"), "stop_sequence": None}, "usage": counts})
                    + _event("message_stop", {"type": "message_stop"}))
        return b""

    def error(self, error: RelayError) -> bytes:
        return _event("error", error_payload(error))


def estimate_tokens(request: dict) -> int:
    """About four characters a token: good enough for budgeting, and never zero for a non-empty prompt."""
    text = orjson.dumps({key: request.get(key) for key in ("system", "messages", "tools")})
    return max(1, len(text) // 4)


class AnthropicSurface(ChatSurface):
    api = "anthropic"

    decode = staticmethod(decode_request)
    encoder = AnthropicStreamEncoder

    def render(self, chat: Chat, completion: Completion) -> dict:
        content: list[dict] = []
        if completion.reasoning:
            content.append({"type": "thinking", "thinking": completion.reasoning, "signature": ""})
        if completion.text:
            content.append({"type": "text", "text": completion.text})
        for call in completion.tool_calls:
            try:
                arguments = json_depth.loads(call.arguments or "{}", "a tool call's arguments")
            except (orjson.JSONDecodeError, BadRequest):  # not JSON, or nested too deep to serialise
                arguments = {}
            content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments})
        return {"id": message_id(), "type": "message", "role": "assistant", "model": chat.model, "content": content,
                "stop_reason": _STOP.get(completion.finish_reason, "end_turn"), "stop_sequence": None,
                "usage": {"input_tokens": completion.usage.prompt_tokens,
                          "output_tokens": completion.usage.completion_tokens}}

    def error_body(self, error: RelayError) -> bytes:
        return orjson.dumps(error_payload(error))

    def stream_error_record(self, error: RelayError, last_chunk: bytes, sse: bool) -> bytes:
        return sse_boundary(last_chunk) + _event("error", error_payload(error))

    def add_prompt(self, request: dict, prompt: str) -> bool:
        if request.get("system"):
            return False
        request["system"] = prompt
        return True

    async def count_tokens(self, ex: Exchange) -> None:
        ex.error_body = self.error_body
        body = await ex.read_body(self.max_body_bytes)
        request = json_object(body)
        await self.gate.admit(ex, model_of(request))
        deployment = self.gateway.deployment(ex.model)
        ex.use_deployment(deployment)
        if deployment.provider == "anthropic":  # exact counts from the upstream itself
            await forward(ex, self.gateway.client, deployment.upstream, self.same_api_body(body, request, deployment),
                          deployment.upstream.base_url + "/v1/messages/count_tokens", self.stream_error_record)
            return
        await ex.respond_json(200, {"input_tokens": estimate_tokens(request)})
