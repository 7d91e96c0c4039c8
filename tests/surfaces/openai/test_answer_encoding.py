"""A Completion -> the chat.completion JSON an OpenAI client gets (shapes: OpenAI API reference)."""

from llmrelay.core.chat import Chat, Completion, ToolCall, Usage
from llmrelay.surfaces.openai import OpenAISurface
from tests.support.recorded import assert_json_fixture, normalised_json

SURFACE = OpenAISurface(gateway=None, gate=None, max_body_bytes=0)  # render needs none of them
CHAT = Chat(model="gpt-4o-mini", messages=[])


def test_text_answer_matches_recorded_completion():
    completion = Completion(text="Hello there, how may I assist you today?", finish_reason="stop",
                            usage=Usage(9, 12))
    assert_json_fixture(normalised_json(SURFACE.render(CHAT, completion)), __file__, "answer_text.json")


def test_tool_call_answer_has_null_content_and_reasoning_content():
    completion = Completion(reasoning="The user wants weather.", finish_reason="tool_calls", usage=Usage(82, 17),
                            tool_calls=[ToolCall("call_abc123", "get_current_weather", '{"location":"Boston, MA"}')])
    assert_json_fixture(normalised_json(SURFACE.render(CHAT, completion)), __file__, "answer_tool_calls.json")


def test_ids_are_fresh_chat_completion_ids():
    first, second = (SURFACE.render(CHAT, Completion(text="x")) for _ in range(2))
    assert first["id"].startswith("chatcmpl-") and first["id"] != second["id"]
    assert isinstance(first["created"], int)
