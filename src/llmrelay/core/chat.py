"""The neutral chat: what every surface decodes into and every provider encodes from.

Surfaces and providers never meet; they share only these types. A `Chat` is a request; a provider answers
it with a stream of `ChatEvent`s, which a surface encodes as its own wire format (or collects into one
answer for a non-streaming client).
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class TextPart:
    text: str


@dataclass(slots=True)
class ImagePart:
    """An image as base64 data with its media type, or as a URL the upstream fetches itself."""
    media_type: str | None = None
    data: str | None = None
    url: str | None = None


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI carries it; providers parse it where they need an object


@dataclass(slots=True)
class Message:
    role: str  # "system", "user", "assistant" or "tool"
    content: list[TextPart | ImagePart] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None  # on a tool result: the call it answers
    tool_name: str | None = None  # on a tool result: the tool's name (Ollama needs it, has no ids)
    is_error: bool = False  # on a tool result

    @property
    def text(self) -> str:
        return "".join(part.text for part in self.content if isinstance(part, TextPart))

    @property
    def images(self) -> list[ImagePart]:
        return [part for part in self.content if isinstance(part, ImagePart)]


@dataclass(slots=True)
class Tool:
    name: str
    description: str | None
    parameters: dict[str, Any]


# Neutral parameter -> the Ollama option that carries it (both Ollama directions read this one table).
OLLAMA_OPTION_OF_PARAM = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "seed": "seed",
                          "stop": "stop", "max_tokens": "num_predict", "presence_penalty": "presence_penalty",
                          "frequency_penalty": "frequency_penalty"}

# Ollama options about how it runs a model, not what the model says: other providers can ignore them.
OLLAMA_RUNTIME_OPTIONS = frozenset({
    "num_ctx", "num_batch", "num_gpu", "main_gpu", "low_vram", "num_thread", "use_mmap", "use_mlock", "numa",
    "num_keep", "vocab_only", "f16_kv", "logits_all", "embedding_only"})


# Requests larger than this are parsed and translated in a worker thread: a 10 MB conversation takes the
# event loop for seconds, and every other request on the node would wait behind it.
OFF_LOOP_BYTES = 512 * 1024


@dataclass(slots=True)
class Chat:
    model: str
    messages: list[Message]
    stream: bool = False
    tools: list[Tool] = field(default_factory=list)
    # None (the upstream's default), "auto", "none", "required", or {"name": tool name}
    tool_choice: str | dict[str, Any] | None = None
    # Sampling and output parameters under neutral names: temperature, top_p, top_k, max_tokens, stop (list),
    # seed, presence_penalty, frequency_penalty, response_format ({"type": "json"} or
    # {"type": "json_schema", "schema": {...}}).
    params: dict[str, Any] = field(default_factory=dict)
    # Ollama `options` a client asked for (num_ctx, ...); only an Ollama upstream can honour them.
    ollama_options: dict[str, Any] = field(default_factory=dict)
    include_usage: bool = False
    # Request fields the client's API has and the neutral chat does not carry: kept to name them in an error
    # (or to drop them when the client allows it).
    untranslated: list[str] = field(default_factory=list)
    drop_untranslated: bool = False
    received_ns: int = 0  # time.monotonic_ns() when the node received it, for durations in answers
    size: int = 0  # bytes of the request it was decoded from (OFF_LOOP_BYTES)

    def ollama_only_options(self) -> list[str]:
        """Ollama options that change the answer and that only Ollama understands (for error messages)."""
        return [f"options.{name}" for name in self.ollama_options if name not in OLLAMA_RUNTIME_OPTIONS]

    @property
    def system(self) -> str | None:
        texts = [message.text for message in self.messages if message.role == "system"]
        return "\n\n".join(texts) if texts else None


# ---- Events a provider yields while it answers ----

@dataclass(slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class ReasoningDelta:
    """Thinking text (Ollama `thinking`, Anthropic thinking blocks, OpenAI-compatible `reasoning_content`)."""
    text: str


@dataclass(slots=True)
class ToolCallStart:
    index: int  # 0, 1, ... in the order the calls start
    id: str
    name: str


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    arguments: str  # the next piece of the call's JSON arguments


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(slots=True)
class Finish:
    reason: str  # "stop", "length", "tool_calls" or "content_filter"
    usage: Usage | None = None


ChatEvent = TextDelta | ReasoningDelta | ToolCallStart | ToolCallDelta | Finish


@dataclass(slots=True)
class Completion:
    """A whole answer, collected from events for a client that did not ask for a stream."""
    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)


async def collect(events: AsyncIterator[ChatEvent]) -> Completion:
    completion = Completion()
    text, reasoning = [], []
    arguments: dict[int, list[str]] = {}
    async for event in events:
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, ToolCallStart):
            completion.tool_calls.append(ToolCall(event.id, event.name, ""))
            arguments[event.index] = []
        elif isinstance(event, ToolCallDelta):
            arguments[event.index].append(event.arguments)
        elif isinstance(event, ReasoningDelta):
            reasoning.append(event.text)
        elif isinstance(event, Finish):
            completion.finish_reason = event.reason
            if event.usage is not None:
                completion.usage = event.usage
    completion.text = "".join(text)
    completion.reasoning = "".join(reasoning)
    for index, call in enumerate(completion.tool_calls):
        call.arguments = "".join(arguments.get(index, ())) or "{}"
    return completion
