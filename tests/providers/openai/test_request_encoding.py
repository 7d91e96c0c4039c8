"""Chat in -> OpenAI /chat/completions request out (shapes: OpenAI API reference, "Create chat completion")."""

from llmrelay.core.chat import Chat, ImagePart, Message, TextPart
from llmrelay.providers.openai import encode_chat
from tests.support.chats import weather_conversation
from tests.support.recorded import assert_json_fixture


def test_tool_conversation_matches_recorded_request():
    chat = weather_conversation()
    chat.tool_choice = {"name": "get_current_weather"}
    request, unsupported = encode_chat(chat, "gpt-4o-mini", {"user": "team-a"})
    assert unsupported == []
    # images as data: URLs in content parts, the assistant's tool call with content null, the result by
    # tool_call_id, a named tool_choice, and stream_options asking for usage
    assert_json_fixture(request, __file__, "request_tools.json")


def test_reasoning_models_take_max_completion_tokens():
    chat = Chat(model="m", messages=[Message("user", [TextPart("hi")])], params={"max_tokens": 64})
    assert encode_chat(chat, "o3-mini", {})[0]["max_completion_tokens"] == 64
    assert "max_tokens" not in encode_chat(chat, "gpt-5-nano", {})[0]
    assert encode_chat(chat, "gpt-4o", {})[0]["max_tokens"] == 64


def test_response_formats_use_openai_names():
    chat = Chat(model="m", messages=[Message("user", [TextPart("hi")])],
                params={"response_format": {"type": "json_schema", "schema": {"type": "object"}}})
    assert encode_chat(chat, "gpt-4o", {})[0]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "response", "schema": {"type": "object"}}}
    chat.params["response_format"] = {"type": "json"}
    assert encode_chat(chat, "gpt-4o", {})[0]["response_format"] == {"type": "json_object"}


def test_top_k_and_ollama_only_options_are_reported_unsupported():
    chat = Chat(model="m", messages=[Message("user", [TextPart("hi")])], params={"top_k": 40},
                ollama_options={"num_ctx": 8192, "mirostat": 1})
    request, unsupported = encode_chat(chat, "gpt-4o", {})
    assert unsupported == ["top_k", "options.mirostat"]  # num_ctx is about running the model: ignored
    assert "top_k" not in request and "stream" not in request


def test_image_link_is_passed_as_a_link():
    chat = Chat(model="m", messages=[Message("user", [TextPart("what is this?"),
                                                      ImagePart(url="https://example.com/cat.png")])])
    assert encode_chat(chat, "gpt-4o", {})[0]["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
