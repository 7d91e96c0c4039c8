"""A fast mock LLM upstream for benchmarks: Ollama's /api/chat and OpenAI's /v1/chat/completions.

Raw asyncio protocol on uvloop with httptools' parser, so that the mock is never what limits a run.
Non-streaming requests get one fixed JSON answer; `"stream": true` gets `--chunks` chunks `--interval` ms apart.

    python bench/mock_upstream.py --port 9100 [--latency-ms 0] [--chunks 20] [--interval-ms 10]
"""

import argparse
import asyncio
import json
import socket

import httptools
import uvloop

OLLAMA_ANSWER = json.dumps({
    "model": "llama3", "created_at": "2026-01-01T00:00:00Z",
    "message": {"role": "assistant", "content": "The sky is blue because of Rayleigh scattering."},
    "done": True, "done_reason": "stop", "total_duration": 1, "load_duration": 1, "prompt_eval_count": 12,
    "prompt_eval_duration": 1, "eval_count": 10, "eval_duration": 1}).encode()
OPENAI_ANSWER = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1767225600, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "The sky is blue."},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}}).encode()


def fixed_response(body: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


RESPONSES = {b"/api/chat": fixed_response(OLLAMA_ANSWER), b"/v1/chat/completions": fixed_response(OPENAI_ANSWER)}


def stream_chunks(path: bytes, count: int) -> list[bytes]:
    if path == b"/v1/chat/completions":
        events = [b"data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1,
                                          "model": "m", "choices": [{"index": 0, "delta": {"content": "tok"},
                                                                     "finish_reason": None}]}).encode() + b"\n\n"
                  for _ in range(count)]
        return events + [b"data: [DONE]\n\n"]
    lines = [json.dumps({"model": "m", "created_at": "t", "message": {"role": "assistant", "content": "tok"},
                         "done": False}).encode() + b"\n" for _ in range(count - 1)]
    return lines + [json.dumps({"model": "m", "created_at": "t", "message": {"role": "assistant", "content": ""},
                                "done": True, "done_reason": "stop"}).encode() + b"\n"]


class MockProtocol(asyncio.Protocol):
    def __init__(self, options):
        self.options = options
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None
        self.path = b""
        self.body = []

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:  # headers and the first chunk go out as two writes: no Nagle wait between them
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_url(self, url):
        self.path = url

    def on_body(self, body):
        self.body.append(body)

    def on_message_complete(self):
        body = b"".join(self.body)
        self.body = []
        streaming = b'"stream": true' in body or b'"stream":true' in body
        if streaming or self.options.latency_ms:
            asyncio.get_running_loop().create_task(self.answer_later(self.path, streaming))
        else:
            self.transport.write(RESPONSES.get(self.path, RESPONSES[b"/api/chat"]))

    async def answer_later(self, path, streaming):
        if self.options.latency_ms:
            await asyncio.sleep(self.options.latency_ms / 1000)
        if not streaming:
            self.transport.write(RESPONSES.get(path, RESPONSES[b"/api/chat"]))
            return
        content_type = b"text/event-stream" if path == b"/v1/chat/completions" else b"application/x-ndjson"
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type
                             + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        for index, chunk in enumerate(stream_chunks(path, self.options.chunks)):
            if index and self.options.interval_ms:
                await asyncio.sleep(self.options.interval_ms / 1000)
            if self.transport.is_closing():
                return
            self.transport.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.transport.write(b"0\r\n\r\n")


async def serve(options):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: MockProtocol(options), "127.0.0.1", options.port, backlog=4096)
    async with server:
        await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency-ms", type=float, default=0)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--interval-ms", type=float, default=10)
    uvloop.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
