"""A fake Anthropic server speaking `POST /v1/messages` as the Messages API reference defines it: a `message`
object, or with `"stream": true` the event sequence message_start, content_block_start, ping,
content_block_delta..., content_block_stop, message_delta, message_stop (tool input as input_json_delta
pieces). Also `/v1/messages/count_tokens`. Errors are `{"type": "error", "error": {"type", "message"}}`.

It refuses what the real API refuses: a missing max_tokens or anthropic-version, a "system" role inside
messages, turns that do not alternate, a tool_result that answers no tool_use.
"""

import json

from aiohttp import web

from tests.fakes.brain import PROMPT_TOKENS, Asked, answer, split_in_three
from tests.fakes.server import FakeServer, scenario

WORDS = ["Hello", "!", " How", " can", " I", " help", "?"]


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"type": "error", "error": {"type": kind, "message": message}}, status=status)


def _event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def _asked(body: dict) -> tuple[Asked, str | None]:
    asked = Asked(tools=[tool["name"] for tool in body.get("tools") or ()])
    if "max_tokens" not in body:
        return asked, "max_tokens: Field required"
    tool_ids = set()
    previous = None
    for index, message in enumerate(body.get("messages") or ()):
        role = message.get("role")
        if role not in ("user", "assistant"):
            return asked, f"messages.{index}.role: Input should be 'user' or 'assistant'"
        if role == previous:
            return asked, "messages: roles must alternate between \"user\" and \"assistant\""
        previous = role
        content = message.get("content")
        for block in content if isinstance(content, list) else ():
            if block["type"] == "tool_use":
                if not isinstance(block.get("input"), dict):
                    return asked, "tool_use.input: Input should be an object"
                tool_ids.add(block["id"])
            elif block["type"] == "tool_result" and block.get("tool_use_id") not in tool_ids:
                return asked, "unexpected `tool_use_id` found in `tool_result` blocks"
            elif block["type"] == "image" and block["source"]["type"] == "base64" and not block["source"].get(
                    "media_type"):
                return asked, "image.source.media_type: Field required"
    last = (body.get("messages") or [{}])[-1]
    content = last.get("content")
    if isinstance(content, str):
        asked.text = content
    else:
        results = [block for block in content or () if block["type"] == "tool_result"]
        if results:
            result = results[-1]["content"]
            asked.tool_result = result if isinstance(result, str) else "".join(b.get("text", "") for b in result)
        asked.text = "".join(block.get("text", "") for block in content or () if block["type"] == "text")
        asked.images = [block["source"].get("media_type", "url") for block in content or ()
                        if block["type"] == "image"]
    return asked, None


class FakeAnthropic(FakeServer):
    def __init__(self, api_key: str = "sk-ant-test-0123456789"):
        super().__init__()
        self.api_key = api_key

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)
        app.router.add_get("/v1/models", self.models)

    def bad_request(self, message: str) -> web.Response:
        return _error(400, "invalid_request_error", message)

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

    async def count_tokens(self, request: web.Request) -> web.Response:
        return self._refused(request) or web.json_response({"input_tokens": 42})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        if refused := self._refused(request):
            return refused
        body = json.loads(await request.read())
        model = body.get("model", "")
        if scenario(model) == "missing":
            return _error(404, "not_found_error", f"model: {model}")
        if early := self.fault(model):
            return early
        asked, problem = _asked(body)
        if problem:
            return _error(400, "invalid_request_error", problem)
        reply = answer(asked)
        words = WORDS if scenario(model) else reply.words
        stop_reason = "tool_use" if reply.calls else "end_turn"
        message = {"id": "msg_fake123", "type": "message", "role": "assistant", "model": model, "content": [],
                   "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 1}}
        if body.get("stream"):
            events = [_event("message_start", {"type": "message_start", "message": message}),
                      _event("ping", {"type": "ping"})]
            index = 0
            if words:
                events += [_event("content_block_start", {"type": "content_block_start", "index": 0,
                                                          "content_block": {"type": "text", "text": ""}})]
                events += [_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                          "delta": {"type": "text_delta", "text": word}})
                           for word in words]
                events += [_event("content_block_stop", {"type": "content_block_stop", "index": 0})]
                index = 1
            for call_id, name, arguments in reply.calls:
                events.append(_event("content_block_start", {"type": "content_block_start", "index": index,
                                                             "content_block": {"type": "tool_use", "id": call_id,
                                                                               "name": name, "input": {}}}))
                events += [_event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                          "delta": {"type": "input_json_delta", "partial_json": piece}})
                           for piece in split_in_three(json.dumps(arguments))]
                events.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
                index += 1
            events += [_event("message_delta", {"type": "message_delta",
                                                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                                "usage": {"output_tokens": reply.completion_tokens}}),
                       _event("message_stop", {"type": "message_stop"})]
            return await self.stream(request, model, "text/event-stream; charset=utf-8", events)
        await self.slow_if_asked(model)
        content = [{"type": "text", "text": "".join(words)}] if words else []
        content += [{"type": "tool_use", "id": call_id, "name": name, "input": arguments}
                    for call_id, name, arguments in reply.calls]
        message.update(content=content, stop_reason=stop_reason,
                       usage={"input_tokens": PROMPT_TOKENS, "output_tokens": reply.completion_tokens})
        return web.json_response(message)
