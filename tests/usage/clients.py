"""The requests the usage and metrics tests make, with each official SDK; each returns what its client saw:
the X-Request-ID header, the status and the usage the answer reported."""

import json

import anthropic
import httpx
import openai

from tests.support.admin import QUESTION
from tests.support.node import Node


def label(provider: str, url: str) -> str:
    """A deployment's label, as the node names the deployments made from the environment."""
    return f"{provider}:{httpx.URL(url).host}:{httpx.URL(url).port}"


def openai_whole(node: Node, key: str, model: str = "llama3") -> dict:
    client = openai.OpenAI(base_url=node.url + "/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model=model, messages=QUESTION)
    completion = raw.parse()
    assert completion.choices[0].message.content
    return {"request_id": raw.headers["x-request-id"], "status": raw.status_code,
            "prompt_tokens": completion.usage.prompt_tokens,
            "completion_tokens": completion.usage.completion_tokens}


def openai_streamed(node: Node, key: str, model: str = "llama3", include_usage: bool = True) -> dict:
    client = openai.OpenAI(base_url=node.url + "/v1", api_key=key, max_retries=0)
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    usage, content_chunks = None, 0
    with client.chat.completions.with_streaming_response.create(model=model, messages=QUESTION, stream=True,
                                                                **options) as response:
        request_id, status = response.headers["x-request-id"], response.status_code
        for chunk in response.parse():
            if chunk.usage is not None:
                usage = chunk.usage
            if chunk.choices and chunk.choices[0].delta.content:
                content_chunks += 1
    assert content_chunks > 0
    return {"request_id": request_id, "status": status, "content_chunks": content_chunks,
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None}


def openai_failing(node: Node, key: str, model: str) -> dict:
    client = openai.OpenAI(base_url=node.url + "/v1", api_key=key, max_retries=0)
    try:
        client.chat.completions.create(model=model, messages=QUESTION)
    except openai.APIStatusError as error:
        return {"request_id": error.response.headers["x-request-id"], "status": error.status_code,
                "error_type": error.response.json()["error"]["code"]}
    raise AssertionError(f"{model} was expected to fail")


def passthrough_whole(node: Node, key: str | None, model: str = "llama3") -> dict:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    response = httpx.post(node.url + "/api/v1/chat", headers=headers, timeout=10,
                          json={"model": model, "messages": QUESTION, "stream": False})
    assert response.status_code == 200, response.text
    answer = response.json()
    return {"request_id": response.headers["x-request-id"], "status": 200,
            "prompt_tokens": answer["prompt_eval_count"], "completion_tokens": answer["eval_count"]}


def passthrough_streamed(node: Node, key: str | None, model: str = "llama3") -> dict:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    with httpx.stream("POST", node.url + "/api/v1/chat", headers=headers, timeout=10,
                      json={"model": model, "messages": QUESTION}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        records = [json.loads(line) for line in response.iter_lines() if line.strip()]
    assert len(records) > 2 and records[-1]["done"]
    return {"request_id": response.headers["x-request-id"], "status": 200,
            "prompt_tokens": records[-1]["prompt_eval_count"], "completion_tokens": records[-1]["eval_count"]}


def anthropic_whole(node: Node, key: str, model: str = "claude-sonnet-4-5") -> dict:
    client = anthropic.Anthropic(base_url=node.url, api_key=key, max_retries=0)
    raw = client.messages.with_raw_response.create(model=model, max_tokens=50, messages=QUESTION)
    message = raw.parse()
    assert message.content[0].text
    return {"request_id": raw.headers["x-request-id"], "status": raw.status_code,
            "prompt_tokens": message.usage.input_tokens, "completion_tokens": message.usage.output_tokens}


def anthropic_streamed(node: Node, key: str, model: str = "claude-sonnet-4-5") -> dict:
    client = anthropic.Anthropic(base_url=node.url, api_key=key, max_retries=0)
    with client.messages.stream(model=model, max_tokens=50, messages=QUESTION) as stream:
        message = stream.get_final_message()
        request_id, status = stream.response.headers["x-request-id"], stream.response.status_code
    assert message.content[0].text
    return {"request_id": request_id, "status": status,
            "prompt_tokens": message.usage.input_tokens, "completion_tokens": message.usage.output_tokens}
