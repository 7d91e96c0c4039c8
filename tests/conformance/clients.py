"""Each official SDK asks the node the same things; the answers come back in one comparable shape.

`ask_<surface>(node_url, model, scenario, stream)` returns a `Result`. Scenarios are spelled in each API's
own wire format, so the node's decoding of that API is what is tested.
"""

import json
from dataclasses import dataclass, field

import anthropic
import ollama
import openai

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"},
                                                   "days": {"type": "integer"}}, "required": ["city"]}
QUESTIONS = {"text": "why is the sky blue?", "tool_call": "What is the weather in Paris?",
             "parallel_tools": "What is the weather in two cities?", "mixed": "mixed: weather in Paris",
             "image": "what is in this image?", "tool_result": "What is the weather in Paris?"}
TOOL_SCENARIOS = ("tool_call", "parallel_tools", "mixed", "tool_result")


@dataclass
class Result:
    text: str = ""
    calls: list[tuple[str, dict]] = field(default_factory=list)  # (name, arguments)
    call_ids: list[str] = field(default_factory=list)
    stop: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    chunks: int = 0
    first_role: str | None = None


# ---- OpenAI ----

def _openai_messages(scenario: str) -> list[dict]:
    if scenario == "image":
        image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
        return [{"role": "user", "content": [{"type": "text", "text": QUESTIONS["image"]}, image]}]
    messages = [{"role": "user", "content": QUESTIONS[scenario]}]
    if scenario == "tool_result":
        messages += [{"role": "assistant", "content": None, "tool_calls": [
                         {"id": "call_abc", "type": "function",
                          "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
                     {"role": "tool", "tool_call_id": "call_abc", "content": "22 degrees"}]
    return messages


def ask_openai(url: str, model: str, scenario: str, stream: bool) -> Result:
    client = openai.OpenAI(base_url=url + "/v1", api_key="not-needed", max_retries=0)
    kwargs = {"model": model, "messages": _openai_messages(scenario), "max_tokens": 100}
    if scenario in TOOL_SCENARIOS:
        kwargs["tools"] = [{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                                                             "parameters": WEATHER_SCHEMA}}]
    result = Result()
    if not stream:
        response = client.chat.completions.create(**kwargs)
        message = response.choices[0].message
        result.text = message.content or ""
        for call in message.tool_calls or ():
            result.calls.append((call.function.name, json.loads(call.function.arguments)))
            result.call_ids.append(call.id)
        result.stop = response.choices[0].finish_reason
        result.prompt_tokens, result.completion_tokens = response.usage.prompt_tokens, response.usage.completion_tokens
        result.first_role = message.role
        return result
    calls: dict[int, dict] = {}
    for chunk in client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}):
        result.chunks += 1
        if chunk.usage:
            result.prompt_tokens, result.completion_tokens = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
        for choice in chunk.choices:
            delta = choice.delta
            if result.first_role is None:
                result.first_role = delta.role
            result.text += delta.content or ""
            for call in delta.tool_calls or ():
                entry = calls.setdefault(call.index, {"id": None, "name": None, "arguments": ""})
                entry["id"] = entry["id"] or call.id
                if call.function and call.function.name:
                    entry["name"] = call.function.name
                if call.function and call.function.arguments:
                    entry["arguments"] += call.function.arguments
            result.stop = choice.finish_reason or result.stop
    for index in sorted(calls):
        result.calls.append((calls[index]["name"], json.loads(calls[index]["arguments"])))
        result.call_ids.append(calls[index]["id"])
    return result


# ---- Anthropic ----

def _anthropic_messages(scenario: str) -> list[dict]:
    if scenario == "image":
        return [{"role": "user", "content": [
            {"type": "text", "text": QUESTIONS["image"]},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}]
    messages = [{"role": "user", "content": QUESTIONS[scenario]}]
    if scenario == "tool_result":
        messages += [{"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_abc", "name": "get_weather",
                                                        "input": {"city": "Paris"}}]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_abc",
                                                   "content": "22 degrees"}]}]
    return messages


def ask_anthropic(url: str, model: str, scenario: str, stream: bool) -> Result:
    client = anthropic.Anthropic(base_url=url, api_key="not-needed", max_retries=0)
    kwargs = {"model": model, "messages": _anthropic_messages(scenario), "max_tokens": 100}
    if scenario in TOOL_SCENARIOS:
        kwargs["tools"] = [{"name": "get_weather", "description": "Weather now", "input_schema": WEATHER_SCHEMA}]
    result = Result()
    if stream:
        with client.messages.stream(**kwargs) as events:
            for _ in events:
                result.chunks += 1
            message = events.get_final_message()
    else:
        message = client.messages.create(**kwargs)
    result.first_role = message.role
    for block in message.content:
        if block.type == "text":
            result.text += block.text
        elif block.type == "tool_use":
            result.calls.append((block.name, block.input))
            result.call_ids.append(block.id)
    result.stop = message.stop_reason
    result.prompt_tokens, result.completion_tokens = message.usage.input_tokens, message.usage.output_tokens
    return result


# ---- Ollama ----

def _ollama_messages(scenario: str) -> list[dict]:
    if scenario == "image":
        return [{"role": "user", "content": QUESTIONS["image"], "images": [PNG]}]
    messages = [{"role": "user", "content": QUESTIONS[scenario]}]
    if scenario == "tool_result":
        messages += [{"role": "assistant", "content": "",
                      "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
                     {"role": "tool", "content": "22 degrees", "tool_name": "get_weather"}]
    return messages


def ask_ollama(url: str, model: str, scenario: str, stream: bool) -> Result:
    client = ollama.Client(host=url)
    kwargs = {"model": model, "messages": _ollama_messages(scenario), "options": {"num_predict": 100}}
    if scenario in TOOL_SCENARIOS:
        kwargs["tools"] = [{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                                                             "parameters": WEATHER_SCHEMA}}]
    result = Result()
    parts = client.chat(**kwargs, stream=True) if stream else [client.chat(**kwargs, stream=False)]
    for part in parts:
        result.chunks += 1
        result.first_role = result.first_role or part.message.role
        result.text += part.message.content or ""
        for call in part.message.tool_calls or ():
            result.calls.append((call.function.name, dict(call.function.arguments)))
        if part.done:
            result.stop = part.done_reason
            result.prompt_tokens, result.completion_tokens = part.prompt_eval_count, part.eval_count
    return result


ASK = {"openai": ask_openai, "anthropic": ask_anthropic, "ollama": ask_ollama}
