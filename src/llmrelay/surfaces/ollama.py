"""Ollama's own API: `/api/chat`, `/api/generate`, `/api/tags`, `/api/show`, `/api/version`, `/api/embed`.
NDJSON streaming, streaming by default, as Ollama does."""

import time

import orjson

from llmrelay.access.model_gate import ModelGate
from llmrelay.asgi import Exchange
from llmrelay.core import json_depth
from llmrelay.core.chat import (
    OLLAMA_OPTION_OF_PARAM,
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
from llmrelay.core.ids import tool_call_id
from llmrelay.relay.forwarding import forward
from llmrelay.routing.gateway import Gateway
from llmrelay.routing.models import Deployment
from llmrelay.surfaces.chat_surface import ChatSurface, StreamEncoder
from llmrelay.surfaces.decoding import (
    expect,
    image_from_url,
    json_object,
    model_of,
    sniff_media_type,
)

OLLAMA_COMPATIBLE_VERSION = "0.12.0"
# Ollama option -> neutral parameter.
_PARAMS = {option: param for param, option in OLLAMA_OPTION_OF_PARAM.items()}
_UNTRANSLATED_OK = {"keep_alive"}
_KNOWN_CHAT = {"model", "messages", "stream", "format", "options", "tools", *_UNTRANSLATED_OK}
_KNOWN_GENERATE = {"model", "prompt", "system", "images", "stream", "format", "options", *_UNTRANSLATED_OK}


def _options(chat: Chat, request: dict) -> None:
    """Options with a neutral meaning become parameters; the rest only an Ollama upstream can honour."""
    options = request.get("options")
    if options is None:
        return
    for name, value in expect(options, dict, "options", "an object").items():
        if name in _PARAMS:
            chat.params[_PARAMS[name]] = [value] if name == "stop" and isinstance(value, str) else value
    chat.ollama_options = {name: value for name, value in options.items() if name not in _PARAMS}


def _format(chat: Chat, request: dict) -> None:
    value = request.get("format")
    if value == "json":
        chat.params["response_format"] = {"type": "json"}
    elif isinstance(value, dict):
        chat.params["response_format"] = {"type": "json_schema", "schema": value}
    elif value not in (None, ""):
        raise BadRequest('format must be "json" or a JSON schema object')


def _images(images, where: str) -> list[ImagePart]:
    parts = []
    for index, image in enumerate(expect(images, list, where, "a list of base64 images")):
        expect(image, str, f"{where}[{index}]", "base64 text")
        parts.append(image_from_url(image, f"{where}[{index}]") if image.startswith("data:")
                     else ImagePart(media_type=sniff_media_type(image), data=image))
    return parts


def decode_chat(request: dict) -> Chat:
    messages: list[Message] = []
    pending: list[ToolCall] = []  # calls not answered yet: Ollama's tool results carry a name, not an id
    for index, item in enumerate(expect(request.get("messages") or [], list, "messages", "a list of messages")):
        where = f"messages[{index}]"
        role = expect(item, dict, where, "an object").get("role")
        if role not in ("system", "user", "assistant", "tool"):
            raise BadRequest(f"{where}.role must be system, user, assistant or tool")
        content = item.get("content") or ""
        message = Message(role, [TextPart(expect(content, str, f"{where}.content", "a string"))] if content else [])
        if item.get("images"):
            message.content.extend(_images(item["images"], f"{where}.images"))
        for call in item.get("tool_calls") or ():
            function = expect((call or {}).get("function"), dict, f"{where}.tool_calls[].function", "an object")
            tool_call = ToolCall(call.get("id") or tool_call_id(), function.get("name") or "",
                                 orjson.dumps(function.get("arguments") or {}).decode())
            message.tool_calls.append(tool_call)
            pending.append(tool_call)
        if role == "tool":
            name = item.get("tool_name") or item.get("name")
            answered = next((call for call in pending if call.name == name), pending[0] if pending else None)
            if answered is not None:
                pending.remove(answered)
            message.tool_name = name or (answered.name if answered else None)
            message.tool_call_id = answered.id if answered else tool_call_id()
        messages.append(message)
    chat = Chat(model=request["model"], messages=messages, stream=request.get("stream", True) is not False)
    _options(chat, request)
    _format(chat, request)
    for index, tool in enumerate(request.get("tools") or ()):
        function = expect(expect(tool, dict, f"tools[{index}]", "an object").get("function"), dict,
                          f"tools[{index}].function", "an object")
        chat.tools.append(Tool(expect(function.get("name"), str, f"tools[{index}].function.name", "a string"),
                               function.get("description"), function.get("parameters") or {"type": "object"}))
    chat.untranslated = [name for name in request if name not in _KNOWN_CHAT]
    return chat


def decode_generate(request: dict) -> Chat:
    messages = []
    if request.get("system"):
        messages.append(Message("system", [TextPart(expect(request["system"], str, "system", "a string"))]))
    prompt = Message("user", [TextPart(expect(request.get("prompt") or "", str, "prompt", "a string"))])
    if request.get("images"):
        prompt.content.extend(_images(request["images"], "images"))
    messages.append(prompt)
    chat = Chat(model=request["model"], messages=messages, stream=request.get("stream", True) is not False)
    _options(chat, request)
    _format(chat, request)
    chat.untranslated = [name for name in request if name not in _KNOWN_GENERATE]
    return chat


def _created_at() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"


def _arguments(arguments: str):
    try:
        return json_depth.loads(arguments or "{}", "a tool call's arguments")
    except (orjson.JSONDecodeError, BadRequest):  # not JSON, or nested too deep to serialise
        return {}


def _final_fields(reason: str, prompt_tokens: int, completion_tokens: int, started: int) -> dict:
    return {"done": True, "done_reason": "length" if reason == "length" else "stop",
            "total_duration": time.monotonic_ns() - started, "load_duration": 0, "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": 0, "eval_count": completion_tokens, "eval_duration": 0}


class OllamaChatEncoder(StreamEncoder):
    """`/api/chat`'s NDJSON stream: message pieces, tool calls whole in one message, then the final line."""

    def __init__(self, chat: Chat):
        self.model = chat.model
        self.started = chat.received_ns or time.monotonic_ns()
        self.calls: list[ToolCall] = []

    def _line(self, fields: dict) -> bytes:
        return orjson.dumps({"model": self.model, "created_at": _created_at(), **fields}) + b"\n"

    def _message(self, **message) -> dict:
        return {"message": {"role": "assistant", "content": "", **message}}

    def _tool_calls(self) -> bytes:
        """Ollama sends tool calls whole, in one message, arguments as an object."""
        if not self.calls:
            return b""
        calls = [{"function": {"name": call.name, "arguments": _arguments(call.arguments)}} for call in self.calls]
        return self._line({**self._message(tool_calls=calls), "done": False})

    def event(self, event) -> bytes:
        if isinstance(event, TextDelta):
            return self._line({**self._message(content=event.text), "done": False})
        if isinstance(event, ReasoningDelta):
            return self._line({**self._message(thinking=event.text), "done": False})
        if isinstance(event, ToolCallStart):
            self.calls.append(ToolCall(event.id, event.name, ""))
        elif isinstance(event, ToolCallDelta):
            self.calls[event.index].arguments += event.arguments
        elif isinstance(event, Finish):
            usage = event.usage
            return self._tool_calls() + self._line({**self._message(), **_final_fields(
                event.reason, usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0,
                self.started)})
        return b""

    def error(self, error: RelayError) -> bytes:
        return _error_body(error) + b"\n"


class OllamaGenerateEncoder(OllamaChatEncoder):
    """`/api/generate`'s NDJSON stream: `response` pieces, no messages and no tool calls."""

    def _message(self, **message) -> dict:
        thinking = {"thinking": message["thinking"]} if "thinking" in message else {}
        return {"response": message.get("content", ""), **thinking}

    def _tool_calls(self) -> bytes:
        return b""


def _error_body(error: RelayError) -> bytes:
    return orjson.dumps({"error": error.message})


def _error_line(error: RelayError, last_chunk: bytes) -> bytes:
    """A stream's last NDJSON line, starting on a line of its own."""
    return (b"" if last_chunk.endswith(b"\n") else b"\n") + _error_body(error) + b"\n"


class _OllamaApi(ChatSurface):
    """What Ollama's two chat endpoints share: the upstream kind, NDJSON streams, the error shape."""

    api = "ollama"
    stream_content_type = b"application/x-ndjson"

    def error_body(self, error: RelayError) -> bytes:
        return _error_body(error)

    def stream_error_record(self, error: RelayError, last_chunk: bytes, sse: bool) -> bytes:
        return _error_line(error, last_chunk)

    def _final(self, chat: Chat, completion: Completion, fields: dict) -> dict:
        usage = completion.usage
        return {"model": chat.model, "created_at": _created_at(), **fields,
                **_final_fields(completion.finish_reason, usage.prompt_tokens, usage.completion_tokens,
                                chat.received_ns or time.monotonic_ns())}


class OllamaChatSurface(_OllamaApi):
    """`POST /api/chat`."""

    decode = staticmethod(decode_chat)
    encoder = OllamaChatEncoder

    def render(self, chat: Chat, completion: Completion) -> dict:
        message: dict = {"role": "assistant", "content": completion.text}
        if completion.reasoning:
            message["thinking"] = completion.reasoning
        if completion.tool_calls:
            message["tool_calls"] = [{"function": {"name": call.name, "arguments": _arguments(call.arguments)}}
                                     for call in completion.tool_calls]
        return self._final(chat, completion, {"message": message})

    def add_prompt(self, request: dict, prompt: str) -> bool:
        messages = request.get("messages")
        if not isinstance(messages, list) or any(isinstance(m, dict) and m.get("role") == "system" for m in messages):
            return False
        messages.insert(0, {"role": "system", "content": prompt})
        return True


class OllamaGenerateSurface(_OllamaApi):
    """`POST /api/generate`: a prompt (and system), answered as `response` text."""

    decode = staticmethod(decode_generate)
    encoder = OllamaGenerateEncoder

    def render(self, chat: Chat, completion: Completion) -> dict:
        fields = {"response": completion.text}
        if completion.reasoning:
            fields["thinking"] = completion.reasoning
        return self._final(chat, completion, fields)

    def add_prompt(self, request: dict, prompt: str) -> bool:
        if request.get("system"):
            return False
        request["system"] = prompt
        return True

    def passthrough_url(self, deployment: Deployment) -> str:
        return deployment.upstream.base_url + "/api/generate"


class OllamaModels:
    """Ollama's model and embedding endpoints: `/api/tags`, `/api/show`, `/api/version`, `/api/embed`."""

    def __init__(self, gateway: Gateway, gate: ModelGate, max_body_bytes: int):
        self.gateway = gateway
        self.gate = gate
        self.max_body_bytes = max_body_bytes

    error_body = staticmethod(_error_body)

    def stream_error_record(self, error: RelayError, last_chunk: bytes, sse: bool) -> bytes:
        return _error_line(error, last_chunk)

    async def tags(self, ex: Exchange) -> None:
        ex.error_body = self.error_body
        models = await self.gateway.ollama_tags()
        listed = {model.get("name") or model.get("model") for model in models}
        for name, provider in await self.gateway.own_model_names() + self.gate.remote_models():
            if name not in listed:
                models.append({"name": name, "model": name, "modified_at": "1970-01-01T00:00:00Z", "size": 0,
                               "digest": "", "details": {"parent_model": "", "format": "", "family": provider,
                                                         "families": [provider], "parameter_size": "",
                                                         "quantization_level": ""}})
        await ex.respond_json(200, {"models": models})

    async def show(self, ex: Exchange) -> None:
        ex.error_body = self.error_body
        body = await ex.read_body(self.max_body_bytes)
        request = json_object(body)
        model = request.get("model") or request.get("name")
        if not isinstance(model, str) or not model:
            raise BadRequest('the request needs a "model" field')
        await self.gate.admit(ex, model)
        deployment = self.gateway.deployment(ex.model)
        ex.use_deployment(deployment)
        if deployment.provider == "ollama":
            payload = orjson.dumps({**request, "model": deployment.model})
            await forward(ex, self.gateway.client, deployment.upstream, payload,
                          deployment.upstream.base_url + "/api/show", self.stream_error_record)
            return
        family = deployment.provider
        await ex.respond_json(200, {
            "modelfile": "", "parameters": "", "template": "",
            "details": {"parent_model": "", "format": "", "family": family, "families": [family],
                        "parameter_size": "", "quantization_level": ""},
            "model_info": {}, "capabilities": ["completion", "tools", "vision"]})

    async def version(self, ex: Exchange) -> None:
        await ex.respond_json(200, {"version": OLLAMA_COMPATIBLE_VERSION})

    async def embed(self, ex: Exchange) -> None:
        ex.error_body = self.error_body
        started = time.monotonic_ns()
        request = json_object(await ex.read_body(self.max_body_bytes))
        await self.gate.admit(ex, model_of(request))
        inputs = request.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not all(isinstance(text, str) for text in inputs):
            raise BadRequest("input must be a string or a list of strings")
        deployment, vectors, tokens = await self.gateway.embed(ex.model, inputs, ex.leases)
        ex.use_deployment(deployment)
        ex.count_tokens(tokens, 0)
        await ex.respond_json(200, {"model": ex.model, "embeddings": vectors,
                                    "total_duration": time.monotonic_ns() - started, "load_duration": 0,
                                    "prompt_eval_count": tokens})
