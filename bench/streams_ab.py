"""Compare two versions of the node on a stream's first chunk and on the delay per chunk, request by request.

bench/streams.py reports what the node adds, in rounds; to tell whether a change to the hot path helped,
drift between rounds is too large (the same code moves by ±50 µs). Here both versions run at once against
one mock, and the streams go direct, A, B, direct, A, B, ... so that each sample of A has a sample of B taken
a tenth of a second later; the median of the paired differences B - A is the answer.

    python bench/streams_ab.py --b path/to/other/checkout/src [--a path/to/src] [--requests 300] [--api openai]

Everything is colder than in streams.py (each process idles while the others answer), so the added times
printed are higher than there; the difference is what counts. An A/A run (the same source twice) shows the
noise: within ±20 µs on these VMs.
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from run import free_port, wait_until_up  # noqa: E402
from streams import APIS, timed_stream  # noqa: E402

WARM_UP = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", help="source directory of version A  [default: the installed node]")
    parser.add_argument("--b", help="source directory of version B  [default: the installed node]")
    parser.add_argument("--requests", type=int, default=300, help="streams per target")
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--interval-ms", type=float, default=5)
    parser.add_argument("--api", choices=("ollama", "openai"), default="ollama",
                        help="ollama: /api/v1/chat (NDJSON); openai: /v1/chat/completions (SSE)  [default: ollama]")
    options = parser.parse_args()
    name, mock_path, body, node_path = APIS[0 if options.api == "ollama" else 1]
    mock_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMRELAY_", "OPENAI_", "ANTHROPIC_"))}
    env.update(LLM_CHAT_URL=f"http://127.0.0.1:{mock_port}", LLMRELAY_EMBEDDED="false", OPENAI_API_KEY="sk-bench",
               OPENAI_BASE_URL=f"http://127.0.0.1:{mock_port}/v1")  # gpt-* models go to the mock's OpenAI API
    processes = [subprocess.Popen([sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port", str(mock_port),
                                   "--chunks", str(options.chunks), "--interval-ms", str(options.interval_ms)])]
    ports = [mock_port]
    with tempfile.TemporaryDirectory() as work:
        try:
            for source in (options.a, options.b):
                port = free_port()
                ports.append(port)
                node_env = dict(env, LLMRELAY_DATA_DIR=tempfile.mkdtemp(dir=work))
                if source:
                    node_env["PYTHONPATH"] = str(Path(source).resolve())
                processes.append(subprocess.Popen([sys.executable, "-m", "llmrelay", "serve", "--port", str(port)],
                                                  env=node_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for port in ports:
                wait_until_up(f"http://127.0.0.1:{port}/" + ("health" if port != mock_port else ""))
            firsts, spreads = interleaved(ports, (mock_path, node_path, node_path), body, options.requests)
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
                process.wait(10)
    direct, a, b = firsts
    added_a = statistics.median(x - d for x, d in zip(a, direct))
    added_b = statistics.median(x - d for x, d in zip(b, direct))
    change = statistics.median(y - x for x, y in zip(a, b))
    print(f"{options.requests} streams each, {name}, {options.chunks} chunks {options.interval_ms:g} ms apart")
    print(f"direct time to first chunk: {statistics.median(direct) * 1e6:.0f} µs")
    print(f"A ({options.a or 'installed'}) adds {added_a * 1e6:.0f} µs; B ({options.b or 'installed'}) adds "
          f"{added_b * 1e6:.0f} µs (medians of paired differences)")
    print(f"B - A, median of paired differences: {change * 1e6:+.0f} µs")
    gaps = max(1, options.chunks - 1)
    direct, a, b = spreads
    per_chunk_a = statistics.median(x - d for x, d in zip(a, direct)) / gaps
    per_chunk_b = statistics.median(x - d for x, d in zip(b, direct)) / gaps
    print(f"per chunk: A adds {per_chunk_a * 1e6:.0f} µs, B adds {per_chunk_b * 1e6:.0f} µs; B - A "
          f"{statistics.median(y - x for x, y in zip(a, b)) / gaps * 1e6:+.0f} µs (medians of paired differences)")


def interleaved(ports: list[int], paths: tuple[str, ...], body: bytes,
                requests: int) -> tuple[list[list[float]], list[list[float]]]:
    """Time to first chunk and from first to last chunk of each stream, per target, the targets taking turns
    one stream at a time."""
    sockets = [socket.create_connection(("127.0.0.1", port)) for port in ports]
    firsts: list[list[float]] = [[] for _ in ports]
    spreads: list[list[float]] = [[] for _ in ports]
    try:
        for sock in sockets:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        turns = list(zip(sockets, paths, firsts, spreads))
        for number in range(WARM_UP + requests):
            # Direct first, then A and B in turns: A, B in one round and B, A in the next, so that neither
            # version always runs right after the other (a fixed order favoured B by ~15 µs in A/A runs).
            order = turns if number % 2 == 0 else [turns[0], *reversed(turns[1:])]
            for sock, path, first_samples, spread_samples in order:
                arrivals = timed_stream(sock, path, body)
                if number >= WARM_UP:
                    first_samples.append(arrivals[0])
                    spread_samples.append(arrivals[-1] - arrivals[0])
    finally:
        for sock in sockets:
            sock.close()
    return firsts, spreads


if __name__ == "__main__":
    main()
