"""Workers AI's whole answer envelope in -> events out (shapes: Workers AI REST API docs)."""

import orjson

from llmrelay.core.chat import Finish, TextDelta, ToolCallDelta, ToolCallStart, Usage
from llmrelay.providers.cloudflare import decode_response
from tests.support.recorded import load_json


def test_text_answer_gives_text_then_finish_with_usage():
    data = load_json(__file__, "response_text.json")
    assert decode_response(data) == [TextDelta(data["result"]["response"]), Finish("stop", Usage(21, 27))]


def test_tool_calls_get_made_up_ids_and_json_arguments():
    start, delta, finish = decode_response(load_json(__file__, "response_tool_calls.json"))
    assert isinstance(start, ToolCallStart) and start.id.startswith("call_")
    assert (start.index, start.name) == (0, "getWeather")
    assert delta == ToolCallDelta(0, '{"latitude":"51.5074","longitude":"-0.1278"}')
    assert finish == Finish("tool_calls", Usage(310, 24))


def test_tool_call_arguments_given_as_text_pass_through():
    data = {"result": {"tool_calls": [{"name": "f", "arguments": '{"a": 1}'}]}, "success": True}
    assert decode_response(data)[1] == ToolCallDelta(0, '{"a": 1}')


def test_json_mode_answer_object_becomes_json_text_not_python_repr():
    text = decode_response(load_json(__file__, "response_json_mode.json"))[0].text
    assert orjson.loads(text) == {"name": "India", "capital": "New Delhi", "languages": ["Hindi", "English"]}
