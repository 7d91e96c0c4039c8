"""A fake Anthropic server speaking `POST /v1/messages` as the Messages API reference defines it: a `message`
object, or with `"stream": true` the event sequence message_start, content_block_start, ping,
content_block_delta..., content_block_stop, message_delta, message_stop; errors as
`{"type": "error", "error": {"type", "message"}}`."""

import json

from aiohttp import web

from tests.fakes.server import FakeServer, scenario

WORDS = ["Hello", "!", " How", " can", " I", " help", "?"]


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"type": "error", "error": {"type": kind, "message": message}}, status=status)


def _event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


class FakeAnthropic(FakeServer):
    def __init__(self, api_key: str = "sk-ant-test-0123456789"):
        super().__init__()
        self.api_key = api_key

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_get("/v1/models", self.models)

    def _refused(self, request: web.Request) -> web.Response | None:
        if request.headers.get("x-api-key") != self.api_key:
            return _error(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        return None

    async def models(self, request: web.Request) -> web.Response:
        return self._refused(request) or web.json_response(
            {"data": [{"type": "model", "id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5",
                       "created_at": "2025-09-29T00:00:00Z"}], "has_more": False, "first_id": None, "last_id": None})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        if refused := self._refused(request):
            return refused
        body = json.loads(await request.read())
        model = body.get("model", "")
        if scenario(model) == "missing":
            return _error(404, "not_found_error", f"model: {model}")
        message = {"id": "msg_fake123", "type": "message", "role": "assistant", "model": model, "content": [],
                   "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 1}}
        if body.get("stream"):
            events = [_event("message_start", {"type": "message_start", "message": message}),
                      _event("content_block_start", {"type": "content_block_start", "index": 0,
                                                     "content_block": {"type": "text", "text": ""}}),
                      _event("ping", {"type": "ping"})]
            events += [_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                      "delta": {"type": "text_delta", "text": word}})
                       for word in WORDS]
            events += [_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
                       _event("message_delta", {"type": "message_delta",
                                                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                                "usage": {"output_tokens": len(WORDS)}}),
                       _event("message_stop", {"type": "message_stop"})]
            return await self.stream(request, model, "text/event-stream; charset=utf-8", events)
        await self.slow_if_asked(model)
        message.update(content=[{"type": "text", "text": "".join(WORDS)}], stop_reason="end_turn",
                       usage={"input_tokens": 10, "output_tokens": len(WORDS)})
        return web.json_response(message)
