"""A fake Ollama server speaking its API as Ollama's docs/api.md defines it: `/api/chat` and `/api/generate`
(NDJSON streaming by default, one JSON object with `"stream": false`), `/api/tags`, `/api/show`,
`/api/embed`, `/api/version`; errors as `{"error": "..."}`.

It refuses what real Ollama would choke on: images that are not plain base64, tool-call arguments that are
not objects, unknown roles.
"""

import json
import time

from aiohttp import web

from tests.fakes.brain import PROMPT_TOKENS, Asked, answer, sniff
from tests.fakes.server import FakeServer, scenario

WORDS = ["The", " sky", " is", " blue", " because", " of", " Rayleigh", " scattering", "."]
TAGS = [{"name": "llama3:latest", "model": "llama3:latest", "modified_at": "2025-01-01T00:00:00Z", "size": 4661224676,
         "digest": "365c0bd3c000a25d28ddbf732fe1c6add414de7275464c4e4d1c3b5fcb5d8ad1",
         "details": {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
                     "parameter_size": "8.0B", "quantization_level": "Q4_0"}}]


def _created_at() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _asked(body: dict) -> tuple[Asked, str | None]:
    """What the request asks, or a protocol violation real Ollama would refuse."""
    asked = Asked(tools=[tool["function"]["name"] for tool in body.get("tools") or ()])
    for message in body.get("messages") or ():
        if message.get("role") not in ("system", "user", "assistant", "tool"):
            return asked, f"invalid role {message.get('role')!r}"
        if not isinstance(message.get("content", ""), str):
            return asked, "content must be a string"
        for image in message.get("images") or ():
            if not isinstance(image, str) or image.startswith("data:"):
                return asked, "images must be base64 strings"
        for call in message.get("tool_calls") or ():
            if not isinstance(call.get("function", {}).get("arguments"), dict):
                return asked, "tool call arguments must be an object"
    messages = body.get("messages") or []
    last = messages[-1] if messages else {"role": "user", "content": body.get("prompt", "")}
    if last.get("role") == "tool":
        asked.tool_result = last.get("content", "")
    else:
        asked.text = last.get("content", "")
        asked.images = [sniff(image) for image in (last.get("images") or body.get("images") or ())]
    return asked, None


class FakeOllama(FakeServer):
    version = "0.12.3"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/chat", self.chat)
        app.router.add_post("/api/generate", self.generate)
        app.router.add_post("/api/embed", self.embed)
        app.router.add_post("/api/show", self.show)
        app.router.add_get("/api/tags", self.tags)
        app.router.add_get("/api/version", self.version_handler)
        app.router.add_get("/", self.root)

    async def root(self, request: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")

    async def version_handler(self, request: web.Request) -> web.Response:
        return web.json_response({"version": self.version})

    async def tags(self, request: web.Request) -> web.Response:
        return web.json_response({"models": TAGS})

    async def show(self, request: web.Request) -> web.Response:
        body = await request.json()
        if scenario(body.get("model", "")) == "missing":
            return _error(404, f"model '{body.get('model')}' not found")
        return web.json_response({"modelfile": "FROM llama3", "parameters": "", "template": "{{ .Prompt }}",
                                  "details": TAGS[0]["details"], "model_info": {"general.architecture": "llama"},
                                  "capabilities": ["completion", "tools"]})

    async def embed(self, request: web.Request) -> web.Response:
        body = await request.json()
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        embeddings = [[0.1, 0.2, float(len(text))] for text in inputs]
        return web.json_response({"model": body["model"], "embeddings": embeddings,
                                  "total_duration": 1000, "load_duration": 10, "prompt_eval_count": 3 * len(inputs)})

    async def generate(self, request: web.Request) -> web.StreamResponse:
        return await self.chat(request, generate=True)

    async def chat(self, request: web.Request, generate: bool = False) -> web.StreamResponse:
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _error(400, "invalid character looking for beginning of value")
        model = body.get("model", "")
        if scenario(model) == "missing":
            return _error(404, f"model '{model}' not found")
        if early := self.fault(model):
            return early
        asked, problem = _asked(body)
        if problem:
            return _error(400, problem)
        reply = answer(asked)
        words = WORDS if scenario(model) else reply.words

        def line(content: str, done: bool, **extra) -> dict:
            head = {"model": model, "created_at": _created_at()}
            part = {"response": content} if generate else {"message": {"role": "assistant", "content": content}}
            return {**head, **part, "done": done, **extra}

        final = line("", True, done_reason="stop", total_duration=4883583458, load_duration=1334875,
                     prompt_eval_count=PROMPT_TOKENS, prompt_eval_duration=342546000,
                     eval_count=reply.completion_tokens, eval_duration=4535599000)
        calls = [{"function": {"name": name, "arguments": arguments}} for _, name, arguments in reply.calls]
        if body.get("stream", True):
            records = [line(word, False) for word in words]
            if calls:
                records.append(line("", False))
                records[-1]["message"]["tool_calls"] = calls
            records.append(final)
            return await self.stream(request, model, "application/x-ndjson",
                                     [json.dumps(record).encode() + b"\n" for record in records])
        await self.slow_if_asked(model)
        if generate:
            final["response"] = "".join(words)
        else:
            final["message"]["content"] = "".join(words)
            if calls:
                final["message"]["tool_calls"] = calls
        return web.json_response(final)
