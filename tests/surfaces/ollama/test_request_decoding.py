"""Ollama client requests (shapes: Ollama docs/api.md, /api/chat and /api/generate) -> the neutral Chat."""

import pytest

from llmrelay.core.chat import ImagePart, Message, TextPart, Tool
from llmrelay.core.errors import BadRequest
from llmrelay.surfaces.ollama import decode_chat, decode_generate
from tests.support.chats import PNG
from tests.support.recorded import load_json


def test_tool_conversation_request_becomes_the_neutral_chat():
    chat = decode_chat(load_json(__file__, "request_tools.json"))
    assert chat.model == "llama3.2" and chat.stream is True  # Ollama streams unless told not to
    system, user, assistant, time_result, weather_result = chat.messages
    assert system == Message("system", [TextPart("You are a terse weather assistant.")])
    assert user == Message("user", [TextPart("What is the weather today in Paris and Lyon?"),
                                    ImagePart(media_type="image/png", data=PNG)])  # type sniffed from the data
    weather, time = assistant.tool_calls
    assert (weather.name, weather.arguments) == ("get_current_weather", '{"location":"Paris, FR","format":"celsius"}')
    assert weather.id.startswith("call_") and time.id.startswith("call_") and weather.id != time.id
    # Ollama has no ids: a result names its tool, or answers the oldest call still open
    assert (time_result.tool_call_id, time_result.tool_name) == (time.id, "get_time")
    assert (weather_result.tool_call_id, weather_result.tool_name) == (weather.id, "get_current_weather")
    assert chat.tools == [Tool("get_current_weather", "Get the current weather for a location",
                               {"type": "object", "properties": {"location": {"type": "string"}},
                                "required": ["location"]})]
    # options with a neutral meaning become parameters (a stop string becomes a list); the rest stay options
    assert chat.params == {"temperature": 0, "seed": 101, "max_tokens": 100, "stop": ["user:"],
                           "response_format": {"type": "json_schema", "schema": {
                               "type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}}}
    assert chat.ollama_options == {"num_ctx": 4096, "mirostat": 1}
    assert chat.untranslated == ["think"]  # keep_alive changes nothing in the answer: not listed


def test_generate_request_becomes_system_and_user_messages():
    chat = decode_generate({"model": "llava", "prompt": "What is in this picture?", "system": "Be brief.",
                            "images": [PNG], "stream": False, "format": "json"})
    assert chat.messages == [Message("system", [TextPart("Be brief.")]),
                             Message("user", [TextPart("What is in this picture?"),
                                              ImagePart(media_type="image/png", data=PNG)])]
    assert chat.stream is False and chat.params == {"response_format": {"type": "json"}}


@pytest.mark.parametrize("request_fields, message", [
    ({"format": "yaml"}, "format must be"),
    ({"messages": [{"role": "robot", "content": "x"}]}, r"messages\[0\].role"),
    ({"messages": [{"role": "user", "content": "x", "images": [42]}]}, r"images\[0\] must be base64 text"),
    ({"options": [1]}, "options must be an object"),
])
def test_malformed_requests_name_the_field_at_fault(request_fields, message):
    with pytest.raises(BadRequest, match=message):
        decode_chat({"model": "m", "messages": [], **request_fields})
