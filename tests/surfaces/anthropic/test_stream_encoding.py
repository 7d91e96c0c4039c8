"""Events -> the named server-sent events an Anthropic client reads, compared with recorded bytes (shapes:
Anthropic docs, "Streaming Messages")."""

from llmrelay.core.chat import (
    Chat,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from llmrelay.core.errors import RateLimited
from llmrelay.providers.anthropic import anthropic_upstream, decode_stream
from llmrelay.providers.wire import sse_events
from llmrelay.surfaces.anthropic import AnthropicStreamEncoder
from tests.support.recorded import (
    CUTS,
    RecordedResponse,
    assert_bytes_fixture,
    drain,
    normalised,
    run,
)

EVENTS = [TextDelta("Okay"), TextDelta(", let me check."),
          ToolCallStart(0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather"),
          ToolCallDelta(0, '{"location":'), ToolCallDelta(0, ' "San Francisco, CA"}'),
          Finish("tool_calls", Usage(472, 89))]


def encode(events) -> bytes:
    encoder = AnthropicStreamEncoder(Chat(model="claude-sonnet-4-5", messages=[]))
    return encoder.head() + b"".join(encoder.event(event) for event in events)


def test_text_then_tool_use_matches_recorded_events():
    # message_start and ping, a text block, a tool_use block with input_json_delta pieces, each block
    # closed before the next opens, then message_delta with the stop reason and usage, and message_stop
    assert_bytes_fixture(normalised(encode(EVENTS)), __file__, "stream_tool_use.sse")


def test_reasoning_then_text_open_a_thinking_block_then_a_text_block():
    assert_bytes_fixture(normalised(encode([ReasoningDelta("Hmm"), ReasoningDelta("."), TextDelta("12,231"),
                                            Finish("length", None)])), __file__, "stream_thinking.sse")


def test_stream_reads_back_through_the_anthropic_provider_decoder():
    upstream = anthropic_upstream(None, "http://127.0.0.1", "2023-06-01")
    body = encode(EVENTS)
    assert run(drain(decode_stream(upstream, sse_events(upstream, RecordedResponse(CUTS["bytes"](body)))))) == EVENTS


def test_error_mid_stream_is_an_anthropic_error_event():
    encoder = AnthropicStreamEncoder(Chat(model="claude-sonnet-4-5", messages=[]))
    assert encoder.error(RateLimited("slow down")) == (
        b'event: error\ndata: {"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}\n\n')
