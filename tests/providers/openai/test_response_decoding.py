"""OpenAI's whole chat.completion object in -> events out (shapes: OpenAI API reference)."""

from llmrelay.core.chat import (
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from llmrelay.providers.openai import decode_response
from tests.support.recorded import load_json


def test_text_answer_gives_text_then_finish_with_usage():
    assert decode_response(load_json(__file__, "response_text.json")) == [
        TextDelta("\n\nHello there, how may I assist you today?"), Finish("stop", Usage(9, 12))]


def test_tool_call_answer_keeps_the_upstreams_id_and_arguments_text():
    assert decode_response(load_json(__file__, "response_tool_calls.json")) == [
        ToolCallStart(0, "call_abc123", "get_current_weather"),
        ToolCallDelta(0, '{\n"location": "Boston, MA"\n}'),
        Finish("tool_calls", Usage(82, 17))]


def test_reasoning_content_comes_before_the_text():
    data = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "42",
                                                  "reasoning_content": "6 times 7"},
                         "finish_reason": "stop"}]}
    assert decode_response(data) == [ReasoningDelta("6 times 7"), TextDelta("42"), Finish("stop", None)]


def test_finish_reasons_map_to_neutral_ones():
    def reason(finish_reason):
        return decode_response({"choices": [{"message": {}, "finish_reason": finish_reason}]})[-1].reason
    assert [reason(value) for value in ("length", "content_filter", "function_call", "something_new")] == [
        "length", "content_filter", "tool_calls", "stop"]
