"""A fake OpenAI server speaking `POST /v1/chat/completions` as OpenAI's API reference defines it: a
`chat.completion` object, or with `"stream": true` server-sent `chat.completion.chunk` events ending in
`data: [DONE]`; errors as `{"error": {"message", "type", "param", "code"}}`."""

import json
import time

from aiohttp import web

from tests.fakes.server import FakeServer, scenario

WORDS = ["The", " sky", " is", " blue", "."]


class FakeOpenAI(FakeServer):
    def __init__(self, api_key: str = "sk-test-openai-0123456789"):
        super().__init__()
        self.api_key = api_key

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_get("/v1/models", self.models)

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return None
        return web.json_response({"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                                            "param": None, "code": "invalid_api_key"}}, status=401)

    async def models(self, request: web.Request) -> web.Response:
        return self._unauthorized(request) or web.json_response(
            {"object": "list", "data": [{"id": "gpt-4o", "object": "model", "created": 1715367049,
                                         "owned_by": "system"}]})

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        if refused := self._unauthorized(request):
            return refused
        body = json.loads(await request.read())
        model = body.get("model", "")
        if scenario(model) == "missing":
            return web.json_response({"error": {"message": f"The model `{model}` does not exist.",
                                                "type": "invalid_request_error", "param": None,
                                                "code": "model_not_found"}}, status=404)
        created = int(time.time())
        base = {"id": "chatcmpl-fake123", "created": created, "model": model, "system_fingerprint": "fp_fake"}
        if body.get("stream"):
            chunks = [{**base, "object": "chat.completion.chunk",
                       "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                    "finish_reason": None}]}]
            chunks += [{**base, "object": "chat.completion.chunk",
                        "choices": [{"index": 0, "delta": {"content": word}, "logprobs": None, "finish_reason": None}]}
                       for word in WORDS]
            chunks.append({**base, "object": "chat.completion.chunk",
                           "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]})
            events = [b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks]
            events.append(b"data: [DONE]\n\n")
            return await self.stream(request, model, "text/event-stream; charset=utf-8", events)
        await self.slow_if_asked(model)
        # Headers OpenAI sends with its answers (its request id, timing, a Cloudflare cookie).
        headers = {"x-request-id": "req_fake123", "openai-processing-ms": "12",
                   "set-cookie": "__cf_bm=abc; path=/; HttpOnly"}
        return web.json_response(headers=headers, data={
            **base, "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(WORDS), "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": len(WORDS), "total_tokens": 12 + len(WORDS)}})
