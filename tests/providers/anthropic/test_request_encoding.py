"""Chat in -> Anthropic /v1/messages request out (shapes: Anthropic Messages API reference)."""

from llmrelay.core.chat import Chat, Message, TextPart
from llmrelay.providers.anthropic import DEFAULT_MAX_TOKENS, encode_chat
from tests.support.chats import weather_conversation
from tests.support.recorded import assert_json_fixture


def test_tool_conversation_matches_recorded_request():
    chat = weather_conversation()
    chat.tool_choice = "required"
    request, unsupported = encode_chat(chat, "claude-sonnet-4-5", {})
    assert unsupported == []
    # the system prompt at the top, the image as a base64 source, the call as a tool_use block with an
    # object input, its result as a user tool_result block merged with the user's next words (turns must
    # alternate), input_schema, tool_choice "any", stop -> stop_sequences
    assert_json_fixture(request, __file__, "request_tools.json")


def test_max_tokens_defaults_because_anthropic_requires_it():
    chat = Chat(model="m", messages=[Message("user", [TextPart("hi")])])
    request, _ = encode_chat(chat, "claude-haiku-4-5", {})
    assert request == {"model": "claude-haiku-4-5", "max_tokens": DEFAULT_MAX_TOKENS,
                       "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}


def test_parameters_the_messages_api_lacks_are_reported():
    chat = Chat(model="m", messages=[Message("user", [TextPart("hi")])],
                params={"seed": 1, "presence_penalty": 0.5, "response_format": {"type": "json"}, "top_k": 5},
                ollama_options={"num_ctx": 4096})
    request, unsupported = encode_chat(chat, "claude-haiku-4-5", {})
    assert sorted(unsupported) == ["presence_penalty", "response_format", "seed"]
    assert request["top_k"] == 5


def test_failed_tool_result_carries_is_error_and_named_choice_becomes_type_tool():
    chat = weather_conversation(image=False)
    chat.messages[3].is_error = True
    chat.tool_choice = {"name": "get_current_weather"}
    request, _ = encode_chat(chat, "claude-haiku-4-5", {})
    assert request["messages"][2]["content"][0] == {
        "type": "tool_result", "tool_use_id": "call_abc123", "content": '{"temperature":22,"sky":"clear"}',
        "is_error": True}
    assert request["tool_choice"] == {"type": "tool", "name": "get_current_weather"}


def test_tool_choice_without_tools_is_not_sent():
    chat = Chat(model="m", messages=[Message("user", [TextPart("hi")])], tool_choice="auto")
    assert "tool_choice" not in encode_chat(chat, "claude-haiku-4-5", {})[0]
