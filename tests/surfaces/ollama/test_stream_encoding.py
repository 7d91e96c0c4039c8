"""Events -> the NDJSON lines an Ollama client reads, compared with recorded bytes (shapes: Ollama
docs/api.md, streaming /api/chat and /api/generate)."""

import orjson

from llmrelay.core.chat import (
    Chat,
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
from llmrelay.surfaces.ollama import OllamaChatEncoder, OllamaGenerateEncoder
from tests.support.recorded import (
    CUTS,
    RecordedResponse,
    assert_bytes_fixture,
    drain,
    normalised,
    run,
)

CHAT = Chat(model="llama3.2", messages=[], stream=True)


def encode(events, generate: bool = False) -> bytes:
    encoder = (OllamaGenerateEncoder if generate else OllamaChatEncoder)(CHAT)
    return encoder.head() + b"".join(encoder.event(event) for event in events)


def test_text_stream_matches_recorded_lines():
    events = [ReasoningDelta("Hmm."), TextDelta("The"), TextDelta(" sky"), Finish("stop", Usage(26, 282))]
    assert_bytes_fixture(normalised(encode(events)), __file__, "stream_text.ndjson")


def test_tool_calls_are_sent_whole_in_one_line_before_the_final_line():
    events = [ToolCallStart(0, "call_1", "get_current_weather"), ToolCallDelta(0, '{"location":'),
              ToolCallDelta(0, '"Paris, FR"}'), ToolCallStart(1, "call_2", "get_time"), ToolCallDelta(1, "{}"),
              Finish("tool_calls", Usage(122, 33))]
    assert_bytes_fixture(normalised(encode(events)), __file__, "stream_tool_calls.ndjson")


def test_generate_stream_uses_response_fields():
    lines = [orjson.loads(line) for line in encode([TextDelta("The"), Finish("length", None)], generate=True)
             .splitlines()]
    assert [(line["response"], line["done"]) for line in lines] == [("The", False), ("", True)]
    assert lines[-1]["done_reason"] == "length" and "message" not in lines[-1]


def test_stream_reads_back_through_the_ollama_provider_decoder():
    events = [TextDelta("Checking."), ToolCallStart(0, "call_1", "get_current_weather"),
              ToolCallDelta(0, '{"location":"Paris, FR"}'), Finish("tool_calls", Usage(122, 33))]
    upstream = ollama_upstream("http://127.0.0.1:11434/api/chat")
    body = encode(events)
    decoded = run(drain(decode_stream(upstream, ndjson_records(upstream, RecordedResponse(CUTS["mid-line"](body))))))
    assert decoded[0] == TextDelta("Checking.") and decoded[2:] == events[2:]
    assert decoded[1].name == "get_current_weather"  # the id is not on Ollama's wire: made up again


def test_error_mid_stream_is_an_error_line():
    assert OllamaChatEncoder(CHAT).error(UpstreamUnavailable("upstream broke off")) == (
        b'{"error":"upstream broke off"}\n')
