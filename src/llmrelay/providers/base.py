"""What every chat provider does the same way: encode, send, then decode a whole answer or a stream."""

import asyncio
from collections.abc import AsyncIterator, Callable

import orjson

from llmrelay.core.chat import OFF_LOOP_BYTES, Chat, ChatEvent
from llmrelay.core.errors import BadRequest
from llmrelay.providers.http_client import UpstreamClient
from llmrelay.providers.upstream import Upstream
from llmrelay.providers.wire import closing, iterate, post_for_json, post_json


def refuse_untranslatable(chat: Chat, unsupported: list[str], provider: str) -> None:
    """A field the upstream cannot take is an error that names it, unless the client allowed dropping."""
    fields = chat.untranslated + unsupported
    if fields and not chat.drop_untranslated:
        names = ", ".join(sorted(set(fields)))
        raise BadRequest(f"the {provider} upstream serving model '{chat.model}' cannot take: {names}; remove "
                         "them, or send the header X-LLMRelay-Drop-Params: true to have the node drop them")


class ChatProvider:
    kind = ""
    encode: Callable[[Chat, str, dict], tuple[dict, list[str]]]
    decode_response: Callable[[dict], list[ChatEvent]]
    decode_stream: Callable[[Upstream, AsyncIterator], AsyncIterator[ChatEvent]]
    stream_records: Callable  # ndjson_records or sse_events

    def __init__(self, client: UpstreamClient):
        self.client = client

    def chat_url(self, upstream: Upstream, model: str) -> str:
        return upstream.chat_url

    async def chat(self, chat: Chat, upstream: Upstream, model: str, options: dict) -> AsyncIterator[ChatEvent]:
        """Send the chat; return its events once the upstream has accepted it (errors are raised before)."""
        if chat.size < OFF_LOOP_BYTES:
            request, unsupported = type(self).encode(chat, model, options)
        else:
            request, unsupported = await asyncio.to_thread(type(self).encode, chat, model, options)
            request = await asyncio.to_thread(orjson.dumps, request)
        refuse_untranslatable(chat, unsupported, self.kind)
        if not chat.stream:
            data = await post_for_json(self.client, upstream, self.chat_url(upstream, model), request)
            return iterate(type(self).decode_response(data))
        response = await post_json(self.client, upstream, self.chat_url(upstream, model), request)
        records = type(self).stream_records(upstream, response)
        return closing(response, type(self).decode_stream(upstream, records))

    async def embed(self, upstream: Upstream, model: str, inputs: list[str], options: dict) -> tuple[list, int]:
        raise BadRequest(f"the {self.kind} provider has no embeddings API; use an Ollama or OpenAI model")
