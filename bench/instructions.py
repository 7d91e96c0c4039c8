"""Benchmark: CPU instructions the node executes per request, counted by valgrind's callgrind.

Wall-clock numbers on a shared VM move by a factor of two from one minute to the next; an instruction count
does not (runs agree within about 1 %). Use it to compare two versions of the hot path:

    python bench/instructions.py [--requests 1000] [--src path/to/other/checkout/src]

The node runs under callgrind (about 50 times slower), answers 300 warm-up requests, then the counters are
zeroed, `--requests` requests are sent one after another on one kept-alive connection, and the counters are
dumped. All threads count, so the work the recorder's thread does for each request (access log, metrics,
usage records) is included. System calls are not: they run in the kernel.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from run import free_port, wait_until_up  # noqa: E402

# The seed's pass-through to Ollama, the same-API path of an OpenAI client to an OpenAI-compatible upstream, and
# an OpenAI client's request translated for Ollama.
PATHS = {"seed": ("/api/v1/chat", "llama3"), "openai": ("/v1/chat/completions", "gpt-4o-mini"),
         "translated": ("/v1/chat/completions", "llama3")}


def request_bytes(path: str, model: str, stream: bool) -> bytes:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "why is the sky blue?"}],
                       "stream": stream}).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def send_requests(port: int, count: int, request: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for _ in range(count):
            sock.sendall(request)
            answer = b""
            while not answer.endswith((b"}", b"0\r\n\r\n")):  # a whole answer's JSON, or a stream's end
                piece = sock.recv(65536)
                if not piece:
                    raise ConnectionError("the node closed the connection")
                answer += piece
            if not answer.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"the node answered {answer[:200]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--src", help="run the node from this source directory instead of the installed one")
    parser.add_argument("--path", choices=PATHS, default="seed")
    parser.add_argument("--keep", help="copy callgrind's dumps (one per thread) into this directory")
    parser.add_argument("--stream", type=int, metavar="CHUNKS", default=0,
                        help="streamed answers of this many chunks, sent back to back, instead of whole ones")
    options = parser.parse_args()
    if not shutil.which("valgrind"):
        subprocess.run(["apt-get", "install", "-y", "-q", "valgrind"], check=True, stdout=subprocess.DEVNULL)
    mock_port, node_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMRELAY_", "OPENAI_", "ANTHROPIC_"))}
    env.update(LLM_CHAT_URL=f"http://127.0.0.1:{mock_port}", LLMRELAY_EMBEDDED="false", OPENAI_API_KEY="sk-bench",
               OPENAI_BASE_URL=f"http://127.0.0.1:{mock_port}/v1")
    path, model = PATHS[options.path]
    request = request_bytes(path, model, options.stream > 0)
    if options.src:
        env["PYTHONPATH"] = str(Path(options.src).resolve())
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "callgrind.out"
        mock = subprocess.Popen([sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port", str(mock_port),
                                 "--chunks", str(options.stream or 1), "--interval-ms", "0"])
        callgrind = ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}"]
        node = subprocess.Popen([*callgrind, sys.executable, "-m", "llmrelay", "serve", "--port", str(node_port)],
                                env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_up(f"http://127.0.0.1:{node_port}/health", timeout=300)
            send_requests(node_port, 300, request)
            subprocess.run(["callgrind_control", "--zero", str(node.pid)], check=True, capture_output=True)
            send_requests(node_port, options.requests, request)
            subprocess.run(["callgrind_control", "--dump", str(node.pid)], check=True, capture_output=True)
        finally:
            for process in (node, mock):
                process.send_signal(signal.SIGTERM)
                process.wait(60)
        threads = {}
        for dump in sorted(Path(work).glob("callgrind.out.1-*")):  # the dump callgrind_control asked for
            text = dump.read_text(errors="replace")
            count = int(re.search(r"^(?:summary|totals): (\d+)", text, re.MULTILINE).group(1))
            if count:
                threads[dump.name.rsplit("-", 1)[1]] = count
            if options.keep:
                shutil.copy(dump, options.keep)
    total = sum(threads.values())
    split = ", ".join(f"thread {name}: {count / options.requests:,.0f}" for name, count in threads.items())
    kind = f"streamed in {options.stream} chunks" if options.stream else "whole answers"
    print(f"{total / options.requests:,.0f} instructions per request on {path}, {kind} ({split}; "
          f"{options.requests} requests, {options.src or 'installed source'})")


if __name__ == "__main__":
    main()
