"""A fake Ollama server speaking `/api/chat` as Ollama's docs/api.md defines it: NDJSON streaming by default,
one JSON object with `"stream": false`, `{"error": "..."}` on failure."""

import json
import time

from aiohttp import web

from tests.fakes.server import FakeServer, scenario

WORDS = ["The", " sky", " is", " blue", " because", " of", " Rayleigh", " scattering", "."]


def _created_at() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())


class FakeOllama(FakeServer):
    version = "0.12.3"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/chat", self.chat)
        app.router.add_get("/api/version", self.version_handler)
        app.router.add_get("/", self.root)

    async def root(self, request: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")

    async def version_handler(self, request: web.Request) -> web.Response:
        return web.json_response({"version": self.version})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = json.loads(await request.read())
        except ValueError:
            return web.json_response({"error": "invalid character looking for beginning of value"}, status=400)
        model = body.get("model", "")
        if scenario(model) == "missing":
            return web.json_response({"error": f"model '{model}' not found"}, status=404)
        final = {"model": model, "created_at": _created_at(), "message": {"role": "assistant", "content": ""},
                 "done": True, "done_reason": "stop", "total_duration": 4883583458, "load_duration": 1334875,
                 "prompt_eval_count": 26, "prompt_eval_duration": 342546000, "eval_count": len(WORDS),
                 "eval_duration": 4535599000}
        if body.get("stream", True):
            lines = [json.dumps({"model": model, "created_at": _created_at(),
                                 "message": {"role": "assistant", "content": word}, "done": False}).encode() + b"\n"
                     for word in WORDS]
            lines.append(json.dumps(final).encode() + b"\n")
            return await self.stream(request, model, "application/x-ndjson", lines)
        await self.slow_if_asked(model)
        final["message"]["content"] = "".join(WORDS)
        return web.json_response(final)
