"""One JSON nesting limit at parse time: a 400 in the client's API shape, never a 500."""

import json

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.core.json_depth import MAX_DEPTH, too_deep


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [1, 5, MAX_DEPTH - 1, MAX_DEPTH])
def test_documents_within_the_limit_pass(depth):
    assert not too_deep(nested(depth).encode())
    assert not too_deep(('{"a":' * depth + "1" + "}" * depth).encode())


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 255, 1024, 5000])
def test_documents_past_the_limit_are_caught(depth):
    assert too_deep(nested(depth).encode())
    assert too_deep(('{"a":' * depth + "1" + "}" * depth).encode())
    assert too_deep(("[{" * (depth // 2 + 1) + "}]" * (depth // 2 + 1)).encode())


def test_brackets_inside_strings_do_not_count():
    document = json.dumps({"messages": [{"content": "[" * 5000 + "{" * 5000 + '\\"['}]}).encode()
    assert not too_deep(document)


def test_many_shallow_containers_are_not_deep():
    document = json.dumps({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}] * 10000})
    assert not too_deep(document.encode())


def depth_of(value) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    return 0


# Strings full of what could fool a byte-level count: brackets, quotes and backslashes.
TRICKY_TEXT = st.text(alphabet='[]{}"\\ab/\n', max_size=12)
JSON_VALUES = st.recursive(
    st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | TRICKY_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TRICKY_TEXT, children, max_size=4),
    max_leaves=40)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, st.integers(min_value=0, max_value=6), st.booleans())
def test_depth_check_agrees_with_the_parsed_documents_depth(value, limit, indent):
    document = orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else 0)
    assert too_deep(document, limit) == (depth_of(value) > limit)


DEEP = {"a": json.loads(nested(300))}


@pytest.mark.parametrize("path, body, error_type", [
    ("/api/show", {"model": "llama3", "extra": DEEP}, str),
    ("/api/chat", {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
                   "tools": [{"type": "function", "function": {"name": "f", "parameters": DEEP}}]}, str),
    ("/v1/chat/completions", {"model": "llama3", "messages": [{"role": "user", "content": "hi"}],
                              "tools": [{"type": "function", "function": {"name": "f", "parameters": DEEP}}]}, dict),
    ("/v1/messages", {"model": "llama3", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
                      "tools": [{"name": "f", "input_schema": DEEP}]}, dict),
    ("/api/v1/chat", {"model": "llama3", "messages": [], "extra": DEEP}, dict),
])
def test_json_nested_255_to_1024_deep_gets_400_not_500(node, path, body, error_type):
    response = httpx.post(node.url + path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert isinstance(error, error_type)
    assert f"more than {MAX_DEPTH} levels" in (error if isinstance(error, str) else error["message"])


def test_deeply_nested_tool_call_arguments_get_400_not_500(node, ollama):
    arguments = json.dumps(DEEP)
    body = {"model": "llama3", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"}]}
    response = httpx.post(node.url + "/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    assert "tool call's arguments" in response.json()["error"]["message"]
