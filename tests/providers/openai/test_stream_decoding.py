"""OpenAI's server-sent events, cut into pieces anywhere, through the real event splitter -> events out."""

import pytest

from llmrelay.core.chat import (
    Finish,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    collect,
)
from llmrelay.core.errors import UpstreamUnavailable
from llmrelay.providers.openai import decode_stream, openai_upstream
from llmrelay.providers.wire import iterate, sse_events
from tests.support.recorded import CUTS, RecordedResponse, drain, load_bytes, run

UPSTREAM = openai_upstream("sk-test", "https://api.openai.com/v1")


def decode(body: bytes, cut) -> list:
    response = RecordedResponse(cut(body))
    return run(drain(decode_stream(UPSTREAM, sse_events(UPSTREAM, response))))


TOOL_EVENTS = [
    ToolCallStart(0, "call_DdmO9pD3xa9XTPNJ32zg2hcA", "get_current_weather"),
    ToolCallDelta(0, '{"'), ToolCallDelta(0, "location"), ToolCallDelta(0, '":"'), ToolCallDelta(0, 'Paris, FR"}'),
    ToolCallStart(1, "call_7QFxYNv9ZpZkV1rQkYw2x3Ab", "get_current_weather"),
    ToolCallDelta(1, '{"location":"Lyon, FR"}'),
    Finish("tool_calls", Usage(82, 37)),  # usage from the extra chunk after the finish reason
]


@pytest.mark.parametrize("cut", CUTS.values(), ids=CUTS.keys())
def test_tool_call_argument_pieces_and_usage_chunk(cut):
    assert decode(load_bytes(__file__, "stream_tool_calls.sse"), cut) == TOOL_EVENTS


def test_tool_call_pieces_collect_into_whole_calls():
    completion = run(collect(iterate(decode(load_bytes(__file__, "stream_tool_calls.sse"), CUTS["sevens"]))))
    assert [(call.name, call.arguments) for call in completion.tool_calls] == [
        ("get_current_weather", '{"location":"Paris, FR"}'), ("get_current_weather", '{"location":"Lyon, FR"}')]
    assert completion.finish_reason == "tool_calls"


@pytest.mark.parametrize("cut", CUTS.values(), ids=CUTS.keys())
def test_text_stream_without_usage_cut_anywhere(cut):
    assert decode(load_bytes(__file__, "stream_text.sse"), cut) == [
        TextDelta("Hello"), TextDelta(" wörld ☀️"), Finish("length", None)]


@pytest.mark.parametrize("cut", CUTS.values(), ids=CUTS.keys())
def test_crlf_framed_stream_cut_between_cr_and_lf_keeps_events_apart(cut):
    # SSE allows CRLF line ends (sse-starlette, some proxies use them). A read ending in "\r\n\r" with the
    # last "\n" in the next read used to merge two events into one "data" that is not JSON.
    body = load_bytes(__file__, "stream_tool_calls.sse").replace(b"\n", b"\r\n")
    assert decode(body, cut) == TOOL_EVENTS


def test_error_chunk_mid_stream_raises_with_the_upstreams_message():
    body = (load_bytes(__file__, "stream_text.sse").split(b"\n\n")[1] + b"\n\n"
            + b'data: {"error":{"message":"The server had an error while processing your request.",'
              b'"type":"server_error"}}\n\n')
    with pytest.raises(UpstreamUnavailable, match="server had an error"):
        decode(body, CUTS["whole"])


def test_stream_ending_without_a_finish_reason_is_an_error():
    body = b"\n\n".join(load_bytes(__file__, "stream_text.sse").split(b"\n\n")[:3]) + b"\n\n"
    with pytest.raises(UpstreamUnavailable, match="without a finish reason"):
        decode(body, CUTS["mid-line"])
