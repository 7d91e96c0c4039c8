"""A Completion -> the Message JSON an Anthropic client gets (shapes: Anthropic Messages API reference)."""

import pytest

from llmrelay.core.chat import Chat, Completion, ToolCall, Usage
from llmrelay.surfaces.anthropic import AnthropicSurface
from tests.support.recorded import assert_json_fixture, normalised_json

SURFACE = AnthropicSurface(gateway=None, gate=None, max_body_bytes=0)  # render needs none of them
CHAT = Chat(model="claude-sonnet-4-5", messages=[])


def test_thinking_text_and_tool_use_answer_matches_recorded_message():
    completion = Completion(reasoning="Paris, so check Paris.", text="Let me check the weather.",
                            tool_calls=[ToolCall("toolu_01A09q90qw90lq917835lq9", "get_weather",
                                                 '{"location": "Paris, FR"}')],
                            finish_reason="tool_calls", usage=Usage(384, 79))
    assert_json_fixture(normalised_json(SURFACE.render(CHAT, completion)), __file__, "answer_tool_use.json")


@pytest.mark.parametrize("reason, stop_reason", [
    ("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal")])
def test_finish_reasons_become_stop_reasons(reason, stop_reason):
    assert SURFACE.render(CHAT, Completion(text="x", finish_reason=reason))["stop_reason"] == stop_reason


def test_tool_arguments_that_are_not_an_object_become_an_empty_input():
    completion = Completion(tool_calls=[ToolCall("toolu_1", "f", "{broken")], finish_reason="tool_calls")
    assert SURFACE.render(CHAT, completion)["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]
