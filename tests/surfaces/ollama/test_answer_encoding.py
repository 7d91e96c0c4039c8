"""A Completion -> the whole JSON answer an Ollama client gets with stream: false (shapes: Ollama
docs/api.md)."""

from llmrelay.core.chat import Chat, Completion, ToolCall, Usage
from llmrelay.surfaces.ollama import OllamaChatSurface, OllamaGenerateSurface
from tests.support.recorded import assert_json_fixture, normalised_json

CHAT = Chat(model="llama3.2", messages=[], stream=False)


def test_text_answer_matches_recorded_chat_answer():
    completion = Completion(text="Hello! How are you today?", reasoning="A greeting.", usage=Usage(26, 298))
    answer = OllamaChatSurface(gateway=None, gate=None, max_body_bytes=0).render(CHAT, completion)
    assert_json_fixture(normalised_json(answer), __file__, "answer_text.json")


def test_tool_call_answer_has_object_arguments_and_done_reason_stop():
    completion = Completion(tool_calls=[ToolCall("call_1", "get_current_weather", '{"location":"Paris, FR"}')],
                            finish_reason="tool_calls", usage=Usage(122, 33))
    answer = OllamaChatSurface(gateway=None, gate=None, max_body_bytes=0).render(CHAT, completion)
    assert answer["message"] == {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "get_current_weather", "arguments": {"location": "Paris, FR"}}}]}
    assert (answer["done"], answer["done_reason"]) == (True, "stop")  # as Ollama says it


def test_generate_answer_has_response_and_length():
    answer = OllamaGenerateSurface(gateway=None, gate=None, max_body_bytes=0).render(
        CHAT, Completion(text="The sky is blue", finish_reason="length", usage=Usage(26, 5)))
    assert answer["response"] == "The sky is blue" and "message" not in answer
    assert (answer["done_reason"], answer["prompt_eval_count"], answer["eval_count"]) == ("length", 26, 5)
