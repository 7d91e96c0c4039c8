"""Load test (not CI): thousands of concurrent streams through one node while an upstream dies and returns.

Two mock Ollama upstreams serve one model; each client loops on streaming requests. A third of the way in,
one upstream is killed (SIGKILL: its streams break mid-answer); later it is started again. Every request
ends as: succeeded (complete stream), failed with a clear error (an error status with a JSON error, or a
stream ending in an error record), or lost (anything else: a hang, a reset, a stream cut without a word).
The node's peak RSS is sampled from /proc.

    python bench/load_streams.py [--clients 2000] [--seconds 60] [--chunks 20] [--interval-ms 500]
"""

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from run import free_port, rss_mb, save_result  # noqa: E402


def start_mock(port: int, options) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port", str(port),
                             "--chunks", str(options.chunks), "--interval-ms", str(options.interval_ms)])


async def client(session, url, stop_at, counts):
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    while time.monotonic() < stop_at:
        try:
            async with session.post(url, json=body) as response:
                if response.status != 200:
                    data = await response.read()
                    counts["clear_error" if b'"error"' in data else "lost"] += 1
                    await asyncio.sleep(0.2)
                    continue
                last = b""
                async for line in response.content:
                    if line.strip():
                        last = line
            record = json.loads(last) if last else {}
            if record.get("done"):
                counts["succeeded"] += 1
            elif "error" in record:
                counts["clear_error"] += 1
            else:
                counts["lost"] += 1
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            counts["lost"] += 1


async def main_async(options) -> dict:
    ports = [free_port(), free_port()]
    mocks = [start_mock(port, options) for port in ports]
    node_port = free_port()
    work = tempfile.mkdtemp()
    Path(work, "llmrelay.yaml").write_text(
        "models:\n  - name: m\n    deployments:\n"
        + "".join(f"      - {{provider: ollama, base_url: 'http://127.0.0.1:{port}', model: llama3}}\n"
                  for port in ports))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMRELAY_", "LLM_CHAT_URL"))}
    env.update(LLMRELAY_MAX_IN_FLIGHT="8192", LLMRELAY_QUEUE_SIZE="8192", LLMRELAY_EMBEDDED="false",
               LLMRELAY_COOLDOWN_SECONDS="5")
    node = subprocess.Popen([sys.executable, "-m", "llmrelay", "serve", "--port", str(node_port)], env=env, cwd=work,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    counts = {"succeeded": 0, "clear_error": 0, "lost": 0}
    peak = idle = 0.0
    try:
        await asyncio.sleep(2)
        idle = rss_mb(node.pid)
        started = time.monotonic()
        stop_at = started + options.seconds
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=options.chunks * options.interval_ms / 1000 + 60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            url = f"http://127.0.0.1:{node_port}/api/chat"
            tasks = [asyncio.create_task(client(session, url, stop_at, counts)) for _ in range(options.clients)]
            killed = restarted = False
            while not all(task.done() for task in tasks):
                await asyncio.sleep(0.5)
                peak = max(peak, rss_mb(node.pid))
                elapsed = time.monotonic() - started
                if not killed and elapsed > options.seconds / 3:
                    mocks[0].send_signal(signal.SIGKILL)
                    killed = True
                if killed and not restarted and elapsed > options.seconds * 0.6:
                    mocks[0] = start_mock(ports[0], options)
                    restarted = True
            await asyncio.gather(*tasks)
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(30)
        for mock in mocks:
            mock.kill()
    return {**counts, "idle_rss_mb": round(idle, 1), "peak_rss_mb": round(peak, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--interval-ms", type=float, default=500)
    options = parser.parse_args()
    result = asyncio.run(main_async(options))
    table = "\n".join([
        f"# {options.clients} concurrent streams for {options.seconds:g} s, one of two upstreams killed and "
        f"restarted, {date.today().isoformat()}",
        "",
        f"Streams of {options.chunks} chunks every {options.interval_ms:g} ms; node with one worker.",
        "",
        "| succeeded | failed with a clear error | lost | node RSS idle | node RSS peak |",
        "|---:|---:|---:|---:|---:|",
        f"| {result['succeeded']} | {result['clear_error']} | {result['lost']} | {result['idle_rss_mb']} MB "
        f"| {result['peak_rss_mb']} MB |",
    ]) + "\n"
    print(table)
    save_result("load-streams", table)


if __name__ == "__main__":
    main()
