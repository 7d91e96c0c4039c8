"""Anthropic's named server-sent events, cut into pieces anywhere, through the real event splitter -> events."""

import pytest

from llmrelay.core.chat import (
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from llmrelay.core.errors import UpstreamUnavailable
from llmrelay.providers.anthropic import anthropic_upstream, decode_stream
from llmrelay.providers.wire import sse_events
from tests.support.recorded import CUTS, RecordedResponse, drain, load_bytes, run

UPSTREAM = anthropic_upstream("sk-ant-test", "https://api.anthropic.com", "2023-06-01")


def decode(body: bytes, cut) -> list:
    response = RecordedResponse(cut(body))
    return run(drain(decode_stream(UPSTREAM, sse_events(UPSTREAM, response))))


@pytest.mark.parametrize("cut", CUTS.values(), ids=CUTS.keys())
def test_text_then_tool_use_with_input_json_pieces(cut):
    assert decode(load_bytes(__file__, "stream_tool_use.sse"), cut) == [
        TextDelta("Okay"), TextDelta(", let me check the weather."),
        ToolCallStart(0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather"),
        # the empty first partial_json is dropped; the rest arrive as they came
        ToolCallDelta(0, '{"location":'), ToolCallDelta(0, ' "San Francisc'),
        ToolCallDelta(0, 'o, CA", "unit": "fah'), ToolCallDelta(0, 'renheit"}'),
        Finish("tool_calls", Usage(472, 89)),  # input from message_start, output from message_delta
    ]


@pytest.mark.parametrize("cut", CUTS.values(), ids=CUTS.keys())
def test_thinking_stream_with_cumulative_usage_in_message_delta(cut):
    assert decode(load_bytes(__file__, "stream_thinking.sse"), cut) == [
        ReasoningDelta("Let me solve this step by step:\n\n1. First break down 27 * 453"),
        ReasoningDelta("\n2. 453 = 400 + 50 + 3"),  # the signature_delta is not text
        TextDelta("27 * 453 = 12,231"),
        Finish("length", Usage(849 + 2048, 47)),
    ]


def test_error_event_mid_stream_raises_with_the_upstreams_message():
    head = load_bytes(__file__, "stream_tool_use.sse").split(b"event: content_block_stop")[0]
    body = head + b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    with pytest.raises(UpstreamUnavailable, match="Overloaded"):
        decode(body, CUTS["mid-line"])


def test_stream_ending_without_message_stop_is_an_error():
    body = load_bytes(__file__, "stream_tool_use.sse").split(b"event: message_stop")[0]
    with pytest.raises(UpstreamUnavailable, match="without message_stop"):
        decode(body, CUTS["sevens"])
