"""Anthropic's whole Message object in -> events out (shapes: Anthropic Messages API reference)."""

from llmrelay.core.chat import (
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from llmrelay.providers.anthropic import decode_response
from tests.support.recorded import load_json


def test_text_answer_gives_text_then_finish_with_usage():
    assert decode_response(load_json(__file__, "response_text.json")) == [
        TextDelta("Hi! My name is Claude."), Finish("stop", Usage(2095, 503))]


def test_tool_use_answer_gives_json_arguments_and_counts_cached_prompt_tokens():
    assert decode_response(load_json(__file__, "response_tool_use.json")) == [
        TextDelta("I'll check the current weather in San Francisco for you."),
        ToolCallStart(0, "toolu_01A09q90qw90lq917835lq9", "get_weather"),
        ToolCallDelta(0, '{"location":"San Francisco, CA","unit":"celsius"}'),
        Finish("tool_calls", Usage(384 + 100 + 1000, 79))]  # cache writes and reads are prompt tokens too


def test_thinking_block_becomes_reasoning_and_stop_reasons_map():
    data = {"content": [{"type": "thinking", "thinking": "hmm", "signature": "sig"},
                        {"type": "redacted_thinking", "data": "xyz"}, {"type": "text", "text": "ok"}],
            "stop_reason": "max_tokens", "usage": {"input_tokens": 1, "output_tokens": 2}}
    assert decode_response(data) == [ReasoningDelta("hmm"), TextDelta("ok"), Finish("length", Usage(1, 2))]
    assert decode_response({"content": [], "stop_reason": "refusal"})[-1].reason == "content_filter"
    assert decode_response({"content": [], "stop_reason": "pause_turn"})[-1].reason == "stop"
