"""Ollama's whole /api/chat answer (stream: false) in -> events out (shapes: Ollama docs/api.md)."""

from llmrelay.core.chat import (
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from llmrelay.providers.ollama import decode_response
from tests.support.recorded import load_json


def test_text_answer_gives_text_then_finish_with_token_counts():
    events = decode_response(load_json(__file__, "response_text.json"))
    assert events == [TextDelta("Hello! How are you today?"), Finish("stop", Usage(26, 298))]


def test_tool_call_answer_finishes_with_tool_calls_and_made_up_id():
    events = decode_response(load_json(__file__, "response_tool_calls.json"))
    start, delta, finish = events
    assert isinstance(start, ToolCallStart) and start.id.startswith("call_") and len(start.id) > 5
    assert (start.index, start.name) == (0, "get_current_weather")
    # Ollama's object arguments become OpenAI-style JSON text
    assert delta == ToolCallDelta(0, '{"format":"celsius","location":"Paris, FR"}')
    assert finish == Finish("tool_calls", Usage(122, 33))  # Ollama says "stop" even for tool calls


def test_thinking_and_done_reason_length():
    record = {"model": "qwen3", "message": {"role": "assistant", "content": "Ray", "thinking": "hmm"},
              "done": True, "done_reason": "length", "prompt_eval_count": 5, "eval_count": 1}
    assert decode_response(record) == [ReasoningDelta("hmm"), TextDelta("Ray"), Finish("length", Usage(5, 1))]


def test_missing_counts_are_zero():
    record = {"model": "llama3.2", "message": {"role": "assistant", "content": ""}, "done": True}
    assert decode_response(record) == [Finish("stop", Usage(0, 0))]
