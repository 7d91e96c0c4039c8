"""Ollama's NDJSON stream, cut into pieces anywhere, through the real line splitter -> events out."""

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
from llmrelay.providers.ollama import decode_stream, ollama_upstream
from llmrelay.providers.wire import ndjson_records
from tests.support.recorded import CUTS, RecordedResponse, drain, load_bytes, run

UPSTREAM = ollama_upstream("http://127.0.0.1:11434/api/chat")


def decode(body: bytes, cut) -> list:
    response = RecordedResponse(cut(body))
    return run(drain(decode_stream(UPSTREAM, ndjson_records(UPSTREAM, response))))


@pytest.mark.parametrize("cut", CUTS.values(), ids=CUTS.keys())
def test_text_stream_cut_anywhere_gives_the_same_events(cut):
    events = decode(load_bytes(__file__, "stream_text.ndjson"), cut)
    assert events == [TextDelta("The"), TextDelta(" sky"), TextDelta(" is blue ☀️."), Finish("stop", Usage(26, 282))]


@pytest.mark.parametrize("cut", CUTS.values(), ids=CUTS.keys())
def test_tool_calls_arrive_whole_with_indexes_in_order_and_finish_as_tool_calls(cut):
    events = decode(load_bytes(__file__, "stream_tool_calls.ndjson"), cut)
    starts = [event for event in events if isinstance(event, ToolCallStart)]
    assert [(start.index, start.name) for start in starts] == [(0, "get_current_weather"), (1, "get_current_weather")]
    assert len({start.id for start in starts}) == 2
    assert [event for event in events if isinstance(event, ToolCallDelta)] == [
        ToolCallDelta(0, '{"format":"celsius","location":"Paris, FR"}'),
        ToolCallDelta(1, '{"format":"celsius","location":"Lyon, FR"}')]
    assert events[-1] == Finish("tool_calls", Usage(122, 33))


def test_thinking_then_text_then_length():
    events = decode(load_bytes(__file__, "stream_thinking_length.ndjson"), CUTS["sevens"])
    assert events == [ReasoningDelta("The user asks"), ReasoningDelta(" about the sky."), TextDelta("Rayleigh"),
                      Finish("length", Usage(12, 4))]


def test_error_record_mid_stream_raises_with_the_upstreams_words():
    body = load_bytes(__file__, "stream_text.ndjson").split(b"\n")[0] + b'\n{"error":"model runner crashed"}\n'
    with pytest.raises(UpstreamUnavailable, match="model runner crashed"):
        decode(body, CUTS["bytes"])


def test_stream_cut_off_before_the_final_record_is_an_error():
    body = b"\n".join(load_bytes(__file__, "stream_text.ndjson").split(b"\n")[:2]) + b"\n"
    with pytest.raises(UpstreamUnavailable, match="without a final record"):
        decode(body, CUTS["whole"])
