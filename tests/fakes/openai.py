"""A fake OpenAI server speaking `POST /v1/chat/completions` as OpenAI's API reference defines it: a
`chat.completion` object, or with `"stream": true` server-sent `chat.completion.chunk` events ending in
`data: [DONE]` (a usage chunk first when `stream_options.include_usage`); tool-call arguments stream in
pieces. Also `/v1/models` and `/v1/embeddings`. Errors are `{"error": {"message", "type", "param", "code"}}`.

It refuses what the real API refuses: a tool message whose tool_call_id answers no earlier call, images
that are not image_url parts, unknown roles.
"""

import json
import time

from aiohttp import web

from tests.fakes.brain import PROMPT_TOKENS, Asked, answer, split_in_three
from tests.fakes.server import FakeServer, scenario

WORDS = ["The", " sky", " is", " blue", "."]


def _error(status: int, message: str, code: str | None = None, kind: str = "invalid_request_error") -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind, "param": None, "code": code}},
                             status=status)


def _asked(body: dict) -> tuple[Asked, str | None]:
    asked = Asked(tools=[tool["function"]["name"] for tool in body.get("tools") or ()])
    call_ids = set()
    for index, message in enumerate(body.get("messages") or ()):
        role = message.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool"):
            return asked, f"Invalid value for 'messages[{index}].role'"
        for call in message.get("tool_calls") or ():
            if not isinstance(call["function"]["arguments"], str):
                return asked, "tool call arguments must be a JSON string"
            call_ids.add(call["id"])
        if role == "tool" and message.get("tool_call_id") not in call_ids:
            return asked, (f"Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                           f"message with 'tool_calls' (messages[{index}].tool_call_id)")
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if part.get("type") not in ("text", "image_url"):
                    return asked, f"Invalid content part type {part.get('type')!r}"
    last = (body.get("messages") or [{}])[-1]
    content = last.get("content")
    if last.get("role") == "tool":
        asked.tool_result = content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
    elif isinstance(content, str):
        asked.text = content
    elif isinstance(content, list):
        asked.text = "".join(part.get("text", "") for part in content if part["type"] == "text")
        asked.images = [part["image_url"]["url"].split(";")[0].removeprefix("data:")
                        for part in content if part["type"] == "image_url"]
    return asked, None


async def _account_headers(request: web.Request, response: web.StreamResponse) -> None:
    """What OpenAI's API sends on every answer about the account the key belongs to, and what a CDN in front of
    it may add."""
    response.headers["openai-organization"] = "org-operator-account"
    response.headers["openai-project"] = "proj_operator"
    response.headers["openai-processing-ms"] = "12"
    response.headers["strict-transport-security"] = "max-age=31536000; includeSubDomains"
    response.headers["access-control-allow-origin"] = "*"


class FakeOpenAI(FakeServer):
    def __init__(self, api_key: str = "sk-test-openai-0123456789"):
        super().__init__()
        self.api_key = api_key

    def routes(self, app: web.Application) -> None:
        app.on_response_prepare.append(_account_headers)
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_get("/v1/models", self.models)

    def bad_request(self, message: str) -> web.Response:
        return _error(400, message)

    def error(self, status: int, message: str, headers: dict | None = None) -> web.Response:
        kind = {429: "requests", 500: "invalid_request_error", 503: "server_error"}.get(status, "server_error")
        code = {429: "rate_limit_exceeded", 500: "model_not_found"}.get(status)
        response = _error(status, message, code, kind)
        response.headers.update(headers or {})
        return response

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return None
        return _error(401, "Incorrect API key provided.", "invalid_api_key")

    async def models(self, request: web.Request) -> web.Response:
        return self._unauthorized(request) or web.json_response(
            {"object": "list", "data": [{"id": "gpt-4o", "object": "model", "created": 1715367049,
                                         "owned_by": "system"}]})

    async def embeddings(self, request: web.Request) -> web.Response:
        if refused := self._unauthorized(request):
            return refused
        body = await request.json()
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return web.json_response({"object": "list", "model": body["model"],
                                  "data": [{"object": "embedding", "index": index, "embedding": [0.5, float(len(text))]}
                                           for index, text in enumerate(inputs)],
                                  "usage": {"prompt_tokens": 2 * len(inputs), "total_tokens": 2 * len(inputs)}})

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        if refused := self._unauthorized(request):
            return refused
        body = json.loads(await request.read())
        model = body.get("model", "")
        if scenario(model) == "missing":
            return _error(404, f"The model `{model}` does not exist.", "model_not_found")
        if early := self.fault(model):
            return early
        asked, problem = _asked(body)
        if problem:
            return _error(400, problem)
        reply = answer(asked)
        words = WORDS if scenario(model) else reply.words
        usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": reply.completion_tokens,
                 "total_tokens": PROMPT_TOKENS + reply.completion_tokens}
        finish = "tool_calls" if reply.calls else "stop"
        base = {"id": "chatcmpl-fake123", "created": int(time.time()), "model": model, "system_fingerprint": "fp_fake"}
        if body.get("stream"):
            return await self.stream(request, model, "text/event-stream; charset=utf-8",
                                     self._events(base, body, words, reply, finish, usage))
        await self.slow_if_asked(model)
        message = {"role": "assistant", "content": "".join(words) or None, "refusal": None}
        if reply.calls:
            message["tool_calls"] = [{"id": call_id, "type": "function",
                                      "function": {"name": name, "arguments": json.dumps(arguments)}}
                                     for call_id, name, arguments in reply.calls]
        # Headers OpenAI sends with its answers (its request id, timing, a Cloudflare cookie).
        headers = {"x-request-id": "req_fake123", "openai-processing-ms": "12",
                   "set-cookie": "__cf_bm=abc; path=/; HttpOnly"}
        return web.json_response(headers=headers, data={
            **base, "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}], "usage": usage})

    @staticmethod
    def _events(base, body, words, reply, finish, usage) -> list[bytes]:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict, finish_reason=None) -> dict:
            data = {**base, "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
            if include_usage:
                data["usage"] = None
            return data

        chunks = [chunk({"role": "assistant", "content": ""})]
        chunks += [chunk({"content": word}) for word in words if word != "Let me check."]
        for index, (call_id, name, arguments) in enumerate(reply.calls):
            start = {"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                     "function": {"name": name, "arguments": ""}}]}
            if index == 0 and "Let me check." in words:
                start["content"] = "Let me check."  # text and a tool call in one chunk, as some models send
            chunks.append(chunk(start))
            chunks += [chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                       for piece in split_in_three(json.dumps(arguments))]
        chunks.append(chunk({}, finish))
        if include_usage:
            chunks.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        return [b"data: " + json.dumps(item).encode() + b"\n\n" for item in chunks] + [b"data: [DONE]\n\n"]
