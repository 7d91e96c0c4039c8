"""Small checks shared by the surfaces' request decoders: each failure names the field at fault."""

import re

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
