"""The OpenAI API: `POST /v1/chat/completions`, `GET /v1/models`, `POST /v1/embeddings`."""

import orjson

from llmrelay.asgi import Exchange
from llmrelay.core.chat import (
    Chat,
    Completion,
    Finish,
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
from llmrelay.core.ids import completion_id, unix_time
from llmrelay.relay.forwarding import sse_boundary
from llmrelay.surfaces.chat_surface import ChatSurface, StreamEncoder
from llmrelay.surfaces.decoding import (
    expect,
    image_from_url,
    json_object,
    model_of,
    name_tool_results,
    optional_number,
)

_PARAMS = ("temperature", "top_p", "top_k", "seed", "presence_penalty", "frequency_penalty")
_UNTRANSLATED_OK = {"user", "parallel_tool_calls", "store", "metadata", "service_tier"}  # no effect on the answer
_KNOWN = {"model", "messages", "stream", "stream_options", "tools", "tool_choice", "max_tokens",
          "max_completion_tokens", "stop", "response_format", "n", "options", *_PARAMS, *_UNTRANSLATED_OK}
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "invalid_request_error", 429: "rate_limit_error"}


def decode_request(request: dict) -> Chat:
    messages = name_tool_results([_message(item, index) for index, item in
                                  enumerate(expect(request.get("messages"), list, "messages", "a list of messages"))])
    chat = Chat(model=request["model"], messages=messages, stream=bool(request.get("stream")))
    for name in _PARAMS:
        if optional_number(request, name) is not None:
            chat.params[name] = request[name]
    max_tokens = request.get("max_completion_tokens", request.get("max_tokens"))
    if max_tokens is not None:
        chat.params["max_tokens"] = expect(max_tokens, int, "max_tokens", "an integer")
    stop = request.get("stop")
    if stop is not None:
        chat.params["stop"] = [stop] if isinstance(stop, str) else expect(stop, list, "stop", "a string or a list")
    response_format = request.get("response_format")
    if response_format is not None:
        kind = expect(response_format, dict, "response_format", "an object").get("type")
        if kind == "json_object":
            chat.params["response_format"] = {"type": "json"}
        elif kind == "json_schema":
            schema = response_format.get("json_schema") or {}
            chat.params["response_format"] = {"type": "json_schema", "schema": schema.get("schema") or {},
                                              "name": schema.get("name")}
        elif kind != "text":
            raise BadRequest("response_format.type must be text, json_object or json_schema")
    if request.get("n", 1) != 1:
        raise BadRequest("n must be 1: the node returns one choice")
    chat.include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
    chat.tools = [_tool(item, index) for index, item in enumerate(request.get("tools") or ())]
    choice = request.get("tool_choice")
    if isinstance(choice, dict):
        chat.tool_choice = {"name": ((choice.get("function") or {}).get("name") or "")}
    elif choice is not None:
        if choice not in ("auto", "none", "required"):
            raise BadRequest("tool_choice must be auto, none, required or a function")
        chat.tool_choice = choice
    if request.get("options") is not None:  # an extension: Ollama options such as num_ctx
        chat.ollama_options = expect(request["options"], dict, "options", "an object of Ollama options")
    chat.untranslated = [name for name in request if name not in _KNOWN]
    return chat


def _message(item, index: int) -> Message:
    where = f"messages[{index}]"
    expect(item, dict, where, "an object")
    role = item.get("role")
    if role == "developer":
        role = "system"
    if role not in ("system", "user", "assistant", "tool"):
        raise BadRequest(f"{where}.role must be system, developer, user, assistant or tool")
    message = Message(role, _content(item.get("content"), where))
    if role == "tool":
        message.tool_call_id = expect(item.get("tool_call_id"), str, f"{where}.tool_call_id", "the id of a tool call")
    for call_index, call in enumerate(item.get("tool_calls") or ()):
        function = expect(expect(call, dict, f"{where}.tool_calls[{call_index}]", "an object").get("function"), dict,
                          f"{where}.tool_calls[{call_index}].function", "an object")
        message.tool_calls.append(ToolCall(call.get("id") or "", function.get("name") or "",
                                           function.get("arguments") or "{}"))
    return message


def _content(content, where: str) -> list:
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(content)]
    parts = []
    for index, part in enumerate(expect(content, list, f"{where}.content", "a string or a list of parts")):
        kind = expect(part, dict, f"{where}.content[{index}]", "an object").get("type")
        if kind == "text":
            parts.append(TextPart(expect(part.get("text"), str, f"{where}.content[{index}].text", "a string")))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append(image_from_url(url, f"{where}.content[{index}].image_url.url"))
        else:
            raise BadRequest(f"{where}.content[{index}].type {kind!r} is not supported; use text or image_url")
    return parts


def _tool(item, index: int) -> Tool:
    function = expect(expect(item, dict, f"tools[{index}]", "an object").get("function"), dict,
                      f"tools[{index}].function", "an object")
    name = expect(function.get("name"), str, f"tools[{index}].function.name", "a string")
    return Tool(name, function.get("description"), function.get("parameters") or {"type": "object", "properties": {}})


def _usage(completion: Completion) -> dict:
    usage = completion.usage
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens}


def sse(payload: dict) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class OpenAIStreamEncoder(StreamEncoder):
    def __init__(self, chat: Chat):
        self.base = {"id": completion_id(), "object": "chat.completion.chunk", "created": unix_time(),
                     "model": chat.model, "system_fingerprint": None}
        self.include_usage = chat.include_usage

    def _chunk(self, delta: dict, finish_reason=None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        chunk = {**self.base, "choices": [choice]}
        if self.include_usage:
            chunk["usage"] = None
        return sse(chunk)

    def head(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def event(self, event) -> bytes:
        if isinstance(event, TextDelta):
            return self._chunk({"content": event.text})
        if isinstance(event, ToolCallStart):
            return self._chunk({"tool_calls": [{"index": event.index, "id": event.id, "type": "function",
                                                "function": {"name": event.name, "arguments": ""}}]})
        if isinstance(event, ToolCallDelta):
            return self._chunk({"tool_calls": [{"index": event.index, "function": {"arguments": event.arguments}}]})
        if isinstance(event, ReasoningDelta):
            return self._chunk({"reasoning_content": event.text})
        if isinstance(event, Finish):
            data = self._chunk({}, event.reason)
            if self.include_usage:
                usage = event.usage
                prompt, completion = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
                data += sse({**self.base, "choices": [], "usage": {
                    "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}})
            return data + b"data: [DONE]\n\n"
        return b""

    def error(self, error: RelayError) -> bytes:
        return sse(error_payload(error))


def error_payload(error: RelayError) -> dict:
    return {"error": {"message": error.message, "type": _ERROR_TYPES.get(error.status, error.type), "param": None,
                      "code": error.type}}


class OpenAISurface(ChatSurface):
    api = "openai"

    decode = staticmethod(decode_request)
    encoder = OpenAIStreamEncoder

    def render(self, chat: Chat, completion: Completion) -> dict:
        message: dict = {"role": "assistant", "content": completion.text or None, "refusal": None}
        if completion.reasoning:
            message["reasoning_content"] = completion.reasoning
        if completion.tool_calls:
            message["tool_calls"] = [{"id": call.id, "type": "function",
                                      "function": {"name": call.name, "arguments": call.arguments}}
                                     for call in completion.tool_calls]
        return {"id": completion_id(), "object": "chat.completion", "created": unix_time(), "model": chat.model,
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": completion.finish_reason}],
                "usage": _usage(completion), "system_fingerprint": None}

    def error_body(self, error: RelayError) -> bytes:
        return orjson.dumps(error_payload(error))

    def stream_error_record(self, error: RelayError, last_chunk: bytes, sse_framing: bool) -> bytes:
        return sse_boundary(last_chunk) + sse(error_payload(error))

    def add_prompt(self, request: dict, prompt: str) -> bool:
        messages = request.get("messages")
        if not isinstance(messages, list) or any(isinstance(m, dict) and m.get("role") in ("system", "developer")
                                                 for m in messages):
            return False
        messages.insert(0, {"role": "system", "content": prompt})
        return True

    async def models(self, ex: Exchange) -> None:
        ex.error_body = self.error_body
        names = await self.gateway.own_model_names() + self.gate.remote_models()
        await ex.respond_json(200, {"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": owner} for name, owner in names]})

    async def embeddings(self, ex: Exchange) -> None:
        ex.error_body = self.error_body
        request = _json_request(await ex.read_body(self.max_body_bytes))
        inputs = request.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not all(isinstance(text, str) for text in inputs):
            raise BadRequest("input must be a string or a list of strings")
        await self.gate.admit(ex, request["model"])
        deployment, vectors, tokens = await self.gateway.embed(request["model"], inputs, ex.leases)
        ex.use_deployment(deployment)
        ex.count_tokens(tokens, 0)
        await ex.respond_json(200, {"object": "list", "model": request["model"],
                                    "data": [{"object": "embedding", "index": index, "embedding": vector}
                                             for index, vector in enumerate(vectors)],
                                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


def _json_request(body: bytes) -> dict:
    request = json_object(body)
    model_of(request)
    return request
