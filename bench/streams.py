"""Benchmark: what the node adds to a stream, against reading the mock upstream directly, through nginx, and
through a bare Python byte relay (bench/bare_relay.py: the floor for any Python proxy on the machine); on the
same-API path (SSE) also through LiteLLM's proxy.

For each request (one at a time, so that nothing else interferes), the arrival time of every piece of the
stream is recorded on a raw socket. Added time to first chunk = node minus direct (median); added delay per
chunk = the extra spread between first and last chunk, divided by the chunks in between (median).

    python bench/streams.py [--rounds 4] [--requests 50] [--chunks 20] [--interval-ms 5] [--no-litellm] [--quick]
                            [--record FILE]
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from run import (  # noqa: E402
    LITELLM_VERSION,
    ensure_tools,
    free_port,
    record,
    save_result,
    start_litellm,
    start_nginx,
    wait_until_up,
)

BODY = json.dumps({"model": "llama3", "messages": [{"role": "user", "content": "hi"}], "stream": True}).encode()
OPENAI_BODY = BODY.replace(b"llama3", b"gpt-4o-mini")
# (what is measured, the mock's own path and body, the node's path)
APIS = (("/api/v1/chat, seed pass-through to Ollama (NDJSON)", "/api/chat", BODY, "/api/v1/chat"),
        ("/v1/chat/completions, same API (OpenAI to OpenAI, SSE)", "/v1/chat/completions", OPENAI_BODY,
         "/v1/chat/completions"))
SAME_API = APIS[1]  # the path LiteLLM's proxy serves too


def timed_stream(sock: socket.socket, path: str, body: bytes) -> list[float]:
    """Seconds from sending the request to the arrival of each JSON record of the answer (an NDJSON line or an
    SSE event), on a kept-alive connection, as a client of a chat API holds one."""
    request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    started = time.perf_counter()
    sock.sendall(request)
    arrivals, data = [], b""
    while not data.endswith(b"0\r\n\r\n"):
        piece = sock.recv(65536)
        if not piece:
            raise ConnectionError("the server closed the connection mid-answer")
        now = time.perf_counter() - started
        data += piece
        arrivals += [now] * (data.count(b"}\n") - len(arrivals))  # every record completed by this piece
    return arrivals


def measure(port: int, path: str, requests: int, body: bytes = BODY) -> tuple[float, float]:
    firsts, spreads = [], []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(requests):
            arrivals = timed_stream(sock, path, body)
            firsts.append(arrivals[0])
            spreads.append(arrivals[-1] - arrivals[0])
    return statistics.median(firsts), statistics.median(spreads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50, help="streams per target and round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--interval-ms", type=float, default=5)
    parser.add_argument("--no-litellm", action="store_true", help="skip LiteLLM (its install takes minutes)")
    parser.add_argument("--record", metavar="FILE", help="add this run's numbers to FILE for bench/targets.py")
    parser.add_argument("--quick", action="store_true",
                        help="one short round without LiteLLM, not saved: to show the bench works")
    options = parser.parse_args()
    if options.quick:
        options.rounds, options.requests, options.chunks, options.no_litellm = 1, 5, 3, True
    mock_port, node_port, nginx_port, bare_port = free_port(), free_port(), free_port(), free_port()
    litellm_port = free_port()
    _, nginx = ensure_tools()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMRELAY_", "OPENAI_", "ANTHROPIC_"))}
    env.update(LLM_CHAT_URL=f"http://127.0.0.1:{mock_port}", LLMRELAY_EMBEDDED="false", OPENAI_API_KEY="sk-bench",
               OPENAI_BASE_URL=f"http://127.0.0.1:{mock_port}/v1")  # gpt-* models go to the mock's OpenAI API
    rounds: dict[str, list] = {api[0]: [] for api in APIS}
    litellm_rounds = []  # (LiteLLM adds to the first chunk, per chunk; the node's, in the same round)
    with tempfile.TemporaryDirectory() as work:
        mock = subprocess.Popen([sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port", str(mock_port),
                                 "--chunks", str(options.chunks), "--interval-ms", str(options.interval_ms)])
        node = subprocess.Popen([sys.executable, "-m", "llmrelay", "serve", "--port", str(node_port)], env=env,
                                cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proxy = start_nginx(nginx, work, mock_port, nginx_port)  # proxy_buffering off: chunks pass at once
        bare = subprocess.Popen([sys.executable, str(ROOT / "bench" / "bare_relay.py"), "--port", str(bare_port),
                                 "--upstream-port", str(mock_port)])
        litellm = None if options.no_litellm else start_litellm(work, mock_port, litellm_port)
        try:
            wait_until_up(f"http://127.0.0.1:{mock_port}/")
            wait_until_up(f"http://127.0.0.1:{node_port}/health")
            wait_until_up(f"http://127.0.0.1:{nginx_port}/")
            wait_until_up(f"http://127.0.0.1:{bare_port}/")
            for _, _, body, node_path in APIS:
                measure(node_port, node_path, 10, body)  # warm-up
            if litellm is not None:
                wait_until_up(f"http://127.0.0.1:{litellm_port}/health/liveliness", timeout=180)
                measure(litellm_port, SAME_API[1], 10, SAME_API[2])
            # Rounds interleave the targets: this machine's speed drifts within a minute, and a single round
            # can land in a fast or a slow phase for one target only.
            for _ in range(options.rounds):
                for name, path, body, node_path in APIS:
                    rounds[name].append(added(options, measure(mock_port, path, options.requests, body),
                                              measure(nginx_port, path, options.requests, body),
                                              measure(bare_port, path, options.requests, body),
                                              measure(node_port, node_path, options.requests, body)))
                if litellm is not None:
                    _, path, body, _ = SAME_API
                    direct = measure(mock_port, path, options.requests, body)
                    through = measure(litellm_port, path, options.requests, body)
                    gaps = max(1, options.chunks - 1)
                    litellm_rounds.append((through[0] - direct[0], (through[1] - direct[1]) / gaps,
                                           rounds[SAME_API[0]][-1][3], rounds[SAME_API[0]][-1][5]))
        finally:
            for process in (node, mock, proxy, bare, litellm):
                if process is not None:
                    process.send_signal(signal.SIGTERM)
                    process.wait(30)
    table = "\n".join([
        f"# Streams through the node, {date.today().isoformat()}",
        "",
        f"{options.rounds} rounds of {options.requests} streams per target, one after another, {options.chunks} "
        f"chunks {options.interval_ms:g} ms apart; each round's medians, then the median of the rounds.",
        *(render(name, results) for name, results in rounds.items()),
        render_litellm(litellm_rounds),
    ]) + "\n"
    print(table)
    ndjson, sse = ([statistics.median(column) * 1e6 for column in zip(*rounds[name])] for name, *_ in APIS)
    record(options.record, first_chunk_added_ndjson_us=ndjson[3], first_chunk_added_sse_us=sse[3],
           per_chunk_added_ndjson_us=ndjson[5], per_chunk_added_sse_us=sse[5])
    if not options.quick:
        save_result("streams", table)


def added(options, direct, nginx, bare, node) -> tuple[float, ...]:
    """Direct time to first chunk, then the time to first chunk nginx, the bare relay and the node add, then
    the delay per chunk nginx and the node add."""
    gaps = max(1, options.chunks - 1)
    return (direct[0], nginx[0] - direct[0], bare[0] - direct[0], node[0] - direct[0],
            (nginx[1] - direct[1]) / gaps, (node[1] - direct[1]) / gaps)


def render(name: str, rounds: list) -> str:
    return table(name, ("direct: time to first chunk", "nginx adds to it", "bare Python relay adds to it",
                        "node adds to it", "nginx adds per chunk", "node adds per chunk"), rounds)


def render_litellm(rounds: list) -> str:
    if not rounds:
        return "\nLiteLLM: not measured in this run (--quick or --no-litellm)."
    return table(f"LiteLLM {LITELLM_VERSION} proxy on the same API (SSE), in the same rounds",
                 ("LiteLLM adds to the first chunk", "LiteLLM adds per chunk", "node adds to the first chunk",
                  "node adds per chunk"), rounds)


def table(heading: str, columns: tuple[str, ...], rounds: list) -> str:
    """A row of times per round, then their medians."""
    def row(label, values):
        return f"| {label} | " + " | ".join(f"{value * 1e6:,.0f} µs" for value in values) + " |"

    medians = [statistics.median(column) for column in zip(*rounds)]
    return "\n".join(["", f"## {heading}", "", "| round | " + " | ".join(columns) + " |",
                      "|---|" + "---:|" * len(columns),
                      *(row(str(number), values) for number, values in enumerate(rounds, 1)),
                      row("**median**", medians)])


if __name__ == "__main__":
    main()
