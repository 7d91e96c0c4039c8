"""Events -> the server-sent events an OpenAI client reads, compared with recorded bytes (shapes: OpenAI API
reference, "The chat completion chunk object"; stream_options.include_usage)."""

from llmrelay.core.chat import (
    Chat,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from llmrelay.core.errors import UpstreamTimeout
from llmrelay.providers.openai import decode_stream, openai_upstream
from llmrelay.providers.wire import sse_events
from llmrelay.surfaces.openai import OpenAIStreamEncoder
from tests.support.recorded import (
    CUTS,
    RecordedResponse,
    assert_bytes_fixture,
    drain,
    normalised,
    run,
)

TOOL_EVENTS = [ToolCallStart(0, "call_DdmO9pD3xa9XTPNJ32zg2hcA", "get_current_weather"),
               ToolCallDelta(0, '{"location":'), ToolCallDelta(0, '"Paris, FR"}'),
               ToolCallStart(1, "call_7QFxYNv9ZpZkV1rQkYw2x3Ab", "get_current_weather"),
               ToolCallDelta(1, '{"location":"Lyon, FR"}'),
               Finish("tool_calls", Usage(82, 37))]


def encode(events, include_usage: bool) -> bytes:
    encoder = OpenAIStreamEncoder(Chat(model="gpt-4o-mini", messages=[], include_usage=include_usage))
    return encoder.head() + b"".join(encoder.event(event) for event in events)


def test_text_stream_with_usage_matches_recorded_bytes():
    events = [ReasoningDelta("Thinking."), TextDelta("Hello"), TextDelta(" wörld"), Finish("stop", Usage(9, 3))]
    # every chunk carries "usage": null, and one more chunk with empty choices carries the counts
    assert_bytes_fixture(normalised(encode(events, include_usage=True)), __file__, "stream_text_usage.sse")


def test_tool_call_stream_matches_recorded_bytes():
    # without include_usage the chunks have no usage key and no usage chunk is sent
    assert_bytes_fixture(normalised(encode(TOOL_EVENTS, include_usage=False)), __file__, "stream_tool_calls.sse")


def test_stream_reads_back_through_the_openai_provider_decoder():
    upstream = openai_upstream(None, "http://127.0.0.1/v1")
    body = encode(TOOL_EVENTS, include_usage=True)
    decoded = run(drain(decode_stream(upstream, sse_events(upstream, RecordedResponse(CUTS["sevens"](body))))))
    assert decoded == TOOL_EVENTS


def test_error_mid_stream_is_an_openai_error_event():
    encoder = OpenAIStreamEncoder(Chat(model="gpt-4o-mini", messages=[]))
    data = encoder.error(UpstreamTimeout("the upstream stalled"))
    assert data == (b'data: {"error":{"message":"the upstream stalled","type":"upstream_timeout","param":null,'
                    b'"code":"upstream_timeout"}}\n\n')
