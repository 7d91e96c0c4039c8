"""Chat in -> Cloudflare Workers AI `ai/run/{model}` request out (shapes: Workers AI docs, text generation
and traditional function calling)."""

import pytest

from llmrelay.core.chat import Chat, Message, TextPart, ToolCall
from llmrelay.core.errors import BadRequest
from llmrelay.providers.cloudflare import encode_chat
from tests.support.chats import weather_conversation
from tests.support.recorded import assert_json_fixture


def test_tool_conversation_matches_recorded_request():
    chat = weather_conversation(image=False)
    del chat.params["stop"]
    request, unsupported = encode_chat(chat, "@cf/meta/llama-3.3-70b-instruct-fp8-fast", {"max_tokens": 1024})
    assert unsupported == []
    # no model in the body (it is in the URL), tool calls with object arguments, the result named by `name`,
    # tools flat (name, description, parameters), max_tokens from the chat over the deployment's
    assert_json_fixture(request, __file__, "request_tools.json")


def test_images_are_refused():
    with pytest.raises(BadRequest, match="text only"):
        encode_chat(weather_conversation(image=True), "@cf/meta/llama-3.1-8b-instruct", {})


def test_stop_tool_choice_and_ollama_options_are_reported_unsupported():
    chat = Chat(model="m", messages=[Message("user", [TextPart("hi")])], params={"stop": ["x"], "seed": 3},
                tool_choice="required", ollama_options={"mirostat": 1})
    request, unsupported = encode_chat(chat, "@cf/meta/llama-3.1-8b-instruct", {})
    assert unsupported == ["stop", "tool_choice", "options.mirostat"]
    assert request == {"messages": [{"role": "user", "content": "hi"}], "seed": 3}


def test_tool_call_arguments_that_are_not_json_are_a_400_not_a_500():
    chat = Chat(model="m", messages=[Message("assistant", tool_calls=[ToolCall("call_1", "f", "{not json")])])
    with pytest.raises(BadRequest):
        encode_chat(chat, "@cf/meta/llama-3.1-8b-instruct", {})
