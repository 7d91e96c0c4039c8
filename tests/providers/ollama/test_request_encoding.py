"""Chat in -> Ollama /api/chat request out (shapes: Ollama docs/api.md, "Generate a chat completion")."""

import pytest

from llmrelay.core.chat import Chat, ImagePart, Message, TextPart, ToolCall
from llmrelay.core.errors import BadRequest
from llmrelay.providers.ollama import encode_chat
from tests.support.chats import WEATHER, weather_conversation
from tests.support.recorded import assert_json_fixture


def test_tool_conversation_matches_recorded_request():
    chat = weather_conversation()
    chat.params["response_format"] = {"type": "json_schema", "schema": {"type": "object"}}
    request, unsupported = encode_chat(chat, "llama3.2", {"num_ctx": 8192})
    assert unsupported == []
    # images as base64 in `images`, tool call arguments as an object, the result named by `tool_name`,
    # sampling parameters as options (max_tokens -> num_predict), the schema as `format`
    assert_json_fixture(request, __file__, "request_tools.json")


def test_client_options_override_deployment_options_and_parameters_override_both():
    chat = Chat(model="m", messages=[Message("user", [TextPart("hi")])], params={"temperature": 0.1},
                ollama_options={"num_ctx": 4096, "temperature": 0.9})
    request, _ = encode_chat(chat, "llama3.2", {"num_ctx": 2048, "num_gpu": 1})
    assert request["options"] == {"num_ctx": 4096, "num_gpu": 1, "temperature": 0.1}
    assert request["stream"] is False


def test_json_mode_becomes_format_json():
    chat = Chat(model="m", messages=[Message("user", [TextPart("hi")])], params={"response_format": {"type": "json"}})
    request, _ = encode_chat(chat, "llama3.2", {})
    assert request["format"] == "json"
    assert "options" not in request


def test_forcing_a_tool_is_reported_unsupported_and_none_sends_no_tools():
    chat = weather_conversation()
    chat.tool_choice = {"name": WEATHER.name}
    assert encode_chat(chat, "llama3.2", {})[1] == ["tool_choice"]
    chat.tool_choice = "none"
    request, unsupported = encode_chat(chat, "llama3.2", {})
    assert "tools" not in request and unsupported == []


def test_image_link_is_refused():
    chat = Chat(model="m", messages=[Message("user", [ImagePart(url="https://example.com/cat.png")])])
    with pytest.raises(BadRequest, match="inline data"):
        encode_chat(chat, "llava", {})


def test_tool_call_arguments_that_are_not_json_are_a_bad_request():
    chat = Chat(model="m", messages=[Message("assistant", tool_calls=[ToolCall("call_1", "f", "{not json")])])
    with pytest.raises(BadRequest, match="not valid JSON"):
        encode_chat(chat, "llama3.2", {})
