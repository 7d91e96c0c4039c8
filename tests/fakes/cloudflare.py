"""A fake Cloudflare Workers AI server: `POST /ai/run/<model>` answers `{"result": {"response", "usage"},
"success", "errors", "messages"}`, or with `"stream": true` server-sent `data: {"response": ...}` events
ending in `data: [DONE]`, as Cloudflare's Workers AI REST API documents."""

import json

from aiohttp import web

from tests.fakes.brain import PROMPT_TOKENS, Asked, answer
from tests.fakes.server import FakeServer, scenario


class FakeCloudflare(FakeServer):
    def __init__(self, token: str = "cf-test-token"):
        super().__init__()
        self.token = token

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/ai/run/{model:.+}", self.run)

    def error(self, status: int, message: str, headers: dict | None = None) -> web.Response:
        return web.json_response({"result": None, "success": False, "errors": [{"code": 3043, "message": message}],
                                  "messages": []}, status=status, headers=headers)

    async def run(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"result": None, "success": False, "errors": [
                {"code": 10000, "message": "Authentication error"}], "messages": []}, status=401)
        body = json.loads(await request.read())
        if early := self.fault(request.match_info["model"]):
            return early
        if scenario(request.match_info["model"]) == "missing":
            return web.json_response({"result": None, "success": False, "errors": [
                {"code": 5007, "message": f"No such model {request.match_info['model']}"}], "messages": []}, status=404)
        messages = body.get("messages") or [{"role": "user", "content": body.get("prompt", "")}]
        reply = answer(Asked(text=messages[-1].get("content", "")))
        usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": reply.completion_tokens,
                 "total_tokens": PROMPT_TOKENS + reply.completion_tokens}
        if body.get("stream"):
            events = [b"data: " + json.dumps({"response": word, "p": "abc"}).encode() + b"\n\n" for word in reply.words]
            events.append(b"data: " + json.dumps({"response": "", "usage": usage}).encode() + b"\n\n")
            events.append(b"data: [DONE]\n\n")
            return await self.stream(request, request.match_info["model"], "text/event-stream", events)
        return web.json_response({"result": {"response": reply.text, "usage": usage}, "success": True,
                                  "errors": [], "messages": []})
