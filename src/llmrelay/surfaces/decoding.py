"""Small checks shared by the surfaces' request decoders: each failure names the field at fault."""

import re

import orjson

from llmrelay.core import json_depth
from llmrelay.core.chat import ImagePart, Message
from llmrelay.core.errors import BadRequest

_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?:;[^,]*)?;base64,(?P<data>.*)", re.DOTALL)


def expect(value, kind, where: str, what: str):
    if not isinstance(value, kind):
        raise BadRequest(f"{where} must be {what}")
    return value


def optional_number(request: dict, name: str):
    value = request.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise BadRequest(f"{name} must be a number")
    return value


def image_from_url(url: str, where: str) -> ImagePart:
    expect(url, str, where, "a URL string")
    match = _DATA_URL.fullmatch(url)
    if match:
        return ImagePart(media_type=match["type"] or "image/png", data=match["data"])
    if url.startswith(("http://", "https://")):
        return ImagePart(url=url)
    raise BadRequest(f"{where} must be an http(s) URL or a data: URL with base64 data")


def sniff_media_type(data: str) -> str:
    """The media type of base64 image data from its first bytes (Ollama sends images without one)."""
    prefixes = {"iVBORw0KGgo": "image/png", "/9j/": "image/jpeg", "R0lGOD": "image/gif", "UklGR": "image/webp"}
    return next((media for prefix, media in prefixes.items() if data.startswith(prefix)), "image/png")


def name_tool_results(messages: list[Message]) -> list[Message]:
    """Give each tool result the name of the call it answers, found by id among the calls before it: APIs with
    ids (OpenAI, Anthropic) leave it out, and upstreams without ids (Ollama) need it."""
    names: dict[str, str] = {}
    for message in messages:
        for call in message.tool_calls:
            names[call.id] = call.name
        if message.role == "tool" and message.tool_name is None and message.tool_call_id in names:
            message.tool_name = names[message.tool_call_id]
    return messages


def requested_model(body: bytes) -> str:
    """The body's model: the only thing the pass-through reads of the request."""
    return model_of(json_object(body))


def json_object(body: bytes) -> dict:
    if body.count(b"[") + body.count(b"{") > json_depth.MAX_DEPTH and json_depth.too_deep(body):
        raise BadRequest(f"the request body nests arrays and objects more than {json_depth.MAX_DEPTH} levels deep; "
                         "flatten it")
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON ({exc}); send a JSON object") from None
    if not isinstance(request, dict):
        raise BadRequest("the request body must be a JSON object with a \"model\" field")
    return request


def model_of(request: dict) -> str:
    model = request.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("the request body needs a \"model\" field naming the model, for example \"llama3\"")
    if len(request) > 1:
        for key in request:
            # Go's JSON decoding (Ollama's) matches field names case-insensitively, the last one winning: a
            # body with "model" and "Model" would be checked for one model and answered by the other.
            if len(key) == 5 and key != "model" and key.lower() == "model":
                raise BadRequest(f"the request body names its model twice (\"model\" and \"{key}\"); send only "
                                 "\"model\"")
    return model
