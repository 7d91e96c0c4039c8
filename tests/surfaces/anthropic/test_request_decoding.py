"""Anthropic client request (shapes: Anthropic Messages API reference) -> the neutral Chat."""

import pytest

from llmrelay.core.chat import Chat, ImagePart, Message, TextPart, Tool, ToolCall
from llmrelay.core.errors import BadRequest
from llmrelay.surfaces.anthropic import decode_request
from tests.support.recorded import load_json


def test_tool_conversation_request_becomes_the_neutral_chat():
    chat = decode_request(load_json(__file__, "request_tools.json"))
    assert chat == Chat(
        model="claude-sonnet-4-5",
        messages=[
            Message("system", [TextPart("You are a terse weather assistant.")]),
            Message("user", [ImagePart(media_type="image/jpeg", data="/9j/4AAQSkZJRg=="),
                             ImagePart(url="https://upload.example.org/paris.png"),
                             TextPart("What is the weather like where this was taken?")]),
            # earlier thinking is not sent on to other providers
            Message("assistant", [TextPart("Let me check.")], tool_calls=[
                ToolCall("toolu_01A09q90qw90lq917835lq9", "get_weather", '{"location":"Paris, FR"}')]),
            # the tool result comes out of the user turn as its own message, before the user's words
            Message("tool", [TextPart("15 degrees, rain")], tool_call_id="toolu_01A09q90qw90lq917835lq9",
                    tool_name="get_weather"),
            Message("user", [TextPart("Umbrella?")]),
        ],
        stream=True,
        tools=[Tool("get_weather", "Get the current weather in a given location",
                    {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]})],
        tool_choice="required",  # "any"
        params={"max_tokens": 1024, "temperature": 0.5, "top_k": 40, "stop": ["\n\nHuman:"]},
        untranslated=["thinking"],  # metadata changes nothing in the answer: not listed
    )


def test_tool_choices_become_neutral_ones():
    request = {"model": "m", "max_tokens": 10, "messages": [], "tools": [{"name": "f", "input_schema": {}}]}
    choices = {"auto": "auto", "any": "required", "none": "none"}
    for kind, neutral in choices.items():
        assert decode_request({**request, "tool_choice": {"type": kind}}).tool_choice == neutral
    assert decode_request({**request, "tool_choice": {"type": "tool", "name": "f"}}).tool_choice == {"name": "f"}


def test_failed_tool_result_keeps_is_error():
    chat = decode_request({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "boom", "is_error": True}]}]})
    assert chat.messages == [Message("tool", [TextPart("boom")], tool_call_id="toolu_1", is_error=True)]


@pytest.mark.parametrize("request_fields, message", [
    ({"max_tokens": None}, "max_tokens: Field required"),
    ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type must be"),
    ({"messages": [{"role": "system", "content": "x"}]}, r"messages\[0\].role must be user or assistant"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_use", "id": "x"}]}]}, "not supported in a user"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}]},
     "source.type must be base64 or url"),
])
def test_malformed_requests_name_the_field_at_fault(request_fields, message):
    with pytest.raises(BadRequest, match=message):
        decode_request({"model": "m", "max_tokens": 10, "messages": [], **request_fields})
