"""OpenAI client request (shapes: OpenAI API reference, "Create chat completion") -> the neutral Chat."""

import pytest

from llmrelay.core.chat import Chat, ImagePart, Message, TextPart, Tool, ToolCall
from llmrelay.core.errors import BadRequest
from llmrelay.surfaces.openai import decode_request
from tests.support.recorded import load_json


def test_tool_conversation_request_becomes_the_neutral_chat():
    chat = decode_request(load_json(__file__, "request_tools.json"))
    assert chat == Chat(
        model="gpt-4o-mini",
        messages=[
            Message("system", [TextPart("You are a terse weather assistant.")]),  # developer is a system prompt
            Message("user", [TextPart("What is the weather today in Paris?"),
                             ImagePart(media_type="image/jpeg", data="/9j/4AAQSkZJRg=="),
                             ImagePart(url="https://upload.example.org/paris.png")]),
            Message("assistant", [], tool_calls=[ToolCall("call_abc123", "get_current_weather",
                                                          '{"location":"Paris, FR"}')]),
            Message("tool", [TextPart('{"temperature":22}')], tool_call_id="call_abc123",
                    tool_name="get_current_weather"),
            Message("user", [TextPart("Umbrella?")]),
        ],
        stream=True,
        tools=[Tool("get_current_weather", "Get the current weather in a given location",
                    {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]})],
        tool_choice={"name": "get_current_weather"},
        # max_completion_tokens wins over the deprecated max_tokens; a single stop string becomes a list
        params={"temperature": 0.2, "seed": 7, "max_tokens": 300, "stop": ["END"]},
        include_usage=True,
        untranslated=["logit_bias"],  # `user` changes nothing in the answer: not listed
    )


def test_response_formats_become_neutral_ones():
    request = {"model": "m", "messages": [], "response_format": {
        "type": "json_schema", "json_schema": {"name": "weather", "schema": {"type": "object"}, "strict": True}}}
    assert decode_request(request).params["response_format"] == {
        "type": "json_schema", "schema": {"type": "object"}, "name": "weather"}
    request["response_format"] = {"type": "json_object"}
    assert decode_request(request).params["response_format"] == {"type": "json"}
    request["response_format"] = {"type": "text"}
    assert "response_format" not in decode_request(request).params


@pytest.mark.parametrize("request_fields, message", [
    ({"n": 2}, "n must be 1"),
    ({"tool_choice": "sometimes"}, "tool_choice must be"),
    ({"temperature": "hot"}, "temperature must be a number"),
    ({"messages": [{"role": "narrator", "content": "x"}]}, r"messages\[0\].role"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "not supported"),
    ({"messages": [{"role": "tool", "content": "x"}]}, r"messages\[0\].tool_call_id"),
])
def test_malformed_requests_name_the_field_at_fault(request_fields, message):
    with pytest.raises(BadRequest, match=message):
        decode_request({"model": "m", "messages": [], **request_fields})


def test_tool_results_are_named_after_their_calls_for_upstreams_without_ids():
    # Regression: OpenAI tool results carry only tool_call_id; the Ollama provider sends `tool_name`, which
    # stayed empty for OpenAI clients, so an Ollama model could not tell which of several calls answered.
    chat = decode_request({"model": "m", "messages": [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_2", "content": "12:00"},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_unknown", "content": "?"}]})
    assert [message.tool_name for message in chat.messages[1:]] == ["get_time", "get_weather", None]
