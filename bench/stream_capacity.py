"""Benchmark: the most concurrent streams each proxy holds without an error, and its memory while it does.

For each target — nginx (`proxy_buffering off`), the node, LiteLLM's proxy — and each step of concurrent
streams (1,000, 2,000, 4,000, 8,000 by default), that many clients start a stream at once on the same-API path
(an OpenAI client, `/v1/chat/completions` with `"stream": true`, to the mock's OpenAI API) and read it to its
end. A stream counts as held when it answers 200 and ends with `data: [DONE]` after all its chunks, within the
stream's own length plus a minute. A target's steps stop at the first one with any failure; its RSS (all its
processes) is sampled every half second.

    python bench/stream_capacity.py [--steps 1000 2000 4000 8000] [--chunks 20] [--interval-ms 250]
                                    [--no-litellm] [--quick] [--record FILE]
"""

import argparse
import asyncio
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

from run import (  # noqa: E402
    LITELLM_VERSION,
    ensure_tools,
    free_port,
    record,
    rss_mb,
    save_result,
    start_litellm,
    start_nginx,
    wait_until_up,
)

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
PATH = "/v1/chat/completions"
FILES = 65_536  # open files each process may have: a held stream takes two at a proxy


async def one_stream(session: aiohttp.ClientSession, url: str, chunks: int) -> str | None:
    """None when the stream was held to its end, else what went wrong."""
    try:
        async with session.post(url, json=BODY) as response:
            if response.status != 200:
                return f"status {response.status}"
            events = 0
            done = False
            async for line in response.content:
                if line.startswith(b"data: [DONE]"):
                    done = True
                elif line.startswith(b"data: "):
                    events += 1
            if not done or events < chunks:  # a proxy may add an event of its own (LiteLLM's finish_reason)
                return f"cut after {events} of {chunks} chunks"
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        return type(exc).__name__
    return None


async def hold(url: str, streams: int, options, pid: int) -> tuple[list[str], float]:
    """Start `streams` streams at once; their failures and the target's peak RSS meanwhile."""
    timeout = aiohttp.ClientTimeout(total=options.chunks * options.interval_ms / 1000 + 60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        tasks = [asyncio.create_task(one_stream(session, url, options.chunks)) for _ in range(streams)]
        peak = 0.0
        while not all(task.done() for task in tasks):
            peak = max(peak, rss_mb(pid))
            await asyncio.wait(tasks, timeout=0.5)
        return [failure for failure in (task.result() for task in tasks) if failure], peak


def measure(name: str, url: str, pid: int, options) -> list[tuple[int, list[str], float]]:
    steps = []
    for streams in options.steps:
        failures, peak = asyncio.run(hold(url, streams, options, pid))
        steps.append((streams, failures, peak))
        print(f"{name}: {streams} streams, {len(failures)} failed, RSS peak {peak:.0f} MB", flush=True)
        if failures:
            break
        time.sleep(1)  # the last step's connections closed before the next opens its own
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--interval-ms", type=float, default=250)
    parser.add_argument("--no-litellm", action="store_true", help="skip LiteLLM (its install takes minutes)")
    parser.add_argument("--quick", action="store_true", help="small steps without LiteLLM, not saved")
    parser.add_argument("--record", metavar="FILE", help="add this run's numbers to FILE for bench/targets.py")
    options = parser.parse_args()
    if options.quick:
        options.steps, options.chunks, options.interval_ms, options.no_litellm = [20, 50], 3, 50, True
    _, nginx = ensure_tools()
    mock_port, node_port, nginx_port, litellm_port = free_port(), free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMRELAY_", "OPENAI_", "ANTHROPIC_"))}
    env.update(LLMRELAY_EMBEDDED="false", OPENAI_API_KEY="sk-bench", OPENAI_BASE_URL=f"http://127.0.0.1:{mock_port}/v1",
               LLMRELAY_MAX_IN_FLIGHT="100000", LLMRELAY_QUEUE_SIZE="100000")  # capacity, not admission, is measured
    raise_file_limit()
    results = {}
    with tempfile.TemporaryDirectory() as work:
        mock = subprocess.Popen([sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port", str(mock_port),
                                 "--chunks", str(options.chunks), "--interval-ms", str(options.interval_ms)])
        # nginx sets aside memory for every connection it may take: as many as the largest step needs.
        connections = 2 * max(options.steps) + 1024
        targets = [("nginx", nginx_port, start_nginx(nginx, work, mock_port, nginx_port, connections), "/"),
                   ("llmrelay", node_port, subprocess.Popen(
                       [sys.executable, "-m", "llmrelay", "serve", "--port", str(node_port)], env=env, cwd=work,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), "/health")]
        if not options.no_litellm:
            targets.append((f"LiteLLM {LITELLM_VERSION}", litellm_port, start_litellm(work, mock_port, litellm_port),
                            "/health/liveliness"))
        try:
            wait_until_up(f"http://127.0.0.1:{mock_port}/")
            for name, port, process, health in targets:
                wait_until_up(f"http://127.0.0.1:{port}{health}", timeout=180)
                results[name] = measure(name, f"http://127.0.0.1:{port}{PATH}", process.pid, options)
        finally:
            for process in (mock, *(target[2] for target in targets)):
                stop(process)
    table = render(results, options)
    print(table)
    node_steps = {streams: (failures, peak) for streams, failures, peak in results.get("llmrelay", [])}
    held = [streams for streams, (failures, _) in node_steps.items() if not failures]
    failures_1000, peak_1000 = node_steps.get(1000, (True, None))
    record(options.record, most_streams_held=max(held, default=0),
           **({} if failures_1000 else {"rss_1000_streams_mb": peak_1000}))
    if not options.quick:
        save_result("stream-capacity", table)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, and SIGKILL half a minute later: a server left with thousands of dead streams may take longer."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def raise_file_limit() -> None:
    """As many open files as a step needs, for this client and the servers it starts (they inherit it)."""
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FILES if hard == resource.RLIM_INFINITY else min(FILES, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def render(results: dict, options) -> str:
    lines = [f"# Concurrent streams held without an error, {date.today().isoformat()}", "",
             f"{PATH} with `\"stream\": true` to the mock's OpenAI API, {options.chunks} chunks "
             f"{options.interval_ms:g} ms apart; all of a step's streams start at once. One worker each.", "",
             "| target | held without an error | RSS at that step | the next step |", "|---|---:|---:|---|"]
    for name, steps in results.items():
        held = [(streams, peak) for streams, failures, peak in steps if not failures]
        failed = [(streams, failures) for streams, failures, _ in steps if failures]
        best = f"{held[-1][0]:,}" if held else "none"
        rss = f"{held[-1][1]:.0f} MB" if held else "-"
        if failed:
            streams, failures = failed[0]
            kinds = sorted({failure for failure in failures})
            after = f"{streams:,}: {len(failures):,} failed ({', '.join(kinds[:3])})"
        else:
            after = "not tried (the last step held)"
        lines.append(f"| {name} | {best} | {rss} | {after} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
