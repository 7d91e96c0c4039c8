"""Benchmark: what keys, rate limits and usage records cost per request, with limits in memory and in Redis.

The same node, mock upstream and request (POST /api/v1/chat) as bench/run.py, started once per
configuration; wrk at concurrency 1 (added latency) and 32 (throughput). The cost of a configuration is
the difference in time per request against the first one, from the throughput at concurrency 32.

    python bench/access_cost.py [--duration 5] [--quick]
"""

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from run import (  # noqa: E402
    WRK_SCRIPT,
    ensure_tools,
    free_port,
    run_wrk,
    save_result,
    wait_until_up,
)

MASTER = "bench-master-key-0123456789abcdef"
CONFIGS = [
    ("open node, usage records off", {"LLMRELAY_USAGE_RECORDS": "false"}, None),
    ("open node, usage records on", {}, None),
    ("keys on: a key without limits", {"LLMRELAY_MASTER_KEY": MASTER}, {}),
    ("key with rpm + tpm limits, in memory", {"LLMRELAY_MASTER_KEY": MASTER}, {"rpm": 10**9, "tpm": 10**12}),
    ("key with rpm + tpm limits, in Redis", {"LLMRELAY_MASTER_KEY": MASTER, "redis": True},
     {"rpm": 10**9, "tpm": 10**12}),
]


def create_key(node_url: str, limits: dict) -> str:
    request = urllib.request.Request(node_url + "/admin/keys", data=json.dumps({"name": "bench", **limits}).encode(),
                                     headers={"authorization": f"Bearer {MASTER}", "content-type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)["key"]


def measure(wrk: str, env: dict, extra: dict, limits: dict | None, work: str, mock_port: int, redis_url: str,
            duration: float) -> dict:
    port = free_port()
    node_env = {**env, **{k: v for k, v in extra.items() if k != "redis"}}
    if extra.get("redis"):
        node_env["LLMRELAY_REDIS_URL"] = redis_url
    node_env["LLMRELAY_DATA_DIR"] = tempfile.mkdtemp(dir=work)
    node = subprocess.Popen([sys.executable, "-m", "llmrelay", "serve", "--port", str(port)], env=node_env, cwd=work,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url + "/health")
        script = WRK_SCRIPT
        if limits is not None:
            key = create_key(url, limits)
            script += f'wrk.headers["Authorization"] = "Bearer {key}"\n'
        path = Path(work) / f"post-{port}.lua"
        path.write_text(script)
        one = run_wrk(wrk, url + "/api/v1/chat", 1, duration, str(path))
        many = run_wrk(wrk, url + "/api/v1/chat", 32, duration, str(path))
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(30)
    errors = one["errors"] + many["errors"]
    if errors or one["socket_errors"] or many["socket_errors"]:
        raise RuntimeError(f"the node answered {errors} requests with an error status ({many['socket_errors']})")
    return {"p50": one["p50"], "p99": one["p99"], "rps": many["rps"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--quick", action="store_true", help="one short round, to show the bench works")
    options = parser.parse_args()
    duration = 1 if options.quick else options.duration
    wrk, _ = ensure_tools()
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        sys.exit("redis-server is not installed: apt-get install redis-server")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMRELAY_", "OPENAI_", "ANTHROPIC_"))}
    mock_port, redis_port = free_port(), free_port()
    env.update(LLM_CHAT_URL=f"http://127.0.0.1:{mock_port}", LLMRELAY_EMBEDDED="false")
    with tempfile.TemporaryDirectory() as work:
        mock = subprocess.Popen([sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port", str(mock_port)])
        redis = subprocess.Popen([redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--dir", work], stdout=subprocess.DEVNULL)
        try:
            wait_until_up(f"http://127.0.0.1:{mock_port}/")
            script = Path(work) / "post.lua"
            script.write_text(WRK_SCRIPT)
            direct = run_wrk(wrk, f"http://127.0.0.1:{mock_port}/api/chat", 1, duration, str(script))
            results = [(name, measure(wrk, env, extra, limits, work, mock_port, f"redis://127.0.0.1:{redis_port}/0",
                                      duration)) for name, extra, limits in CONFIGS]
        finally:
            for process in (mock, redis):
                process.send_signal(signal.SIGTERM)
                process.wait(10)
    table = render(results, direct, duration)
    print(table)
    if not options.quick:
        save_result("access-cost", table)


def render(results, direct: dict, duration: float) -> str:
    floor = results[0][1]["rps"]
    lines = [f"# Keys, limits and usage records on the hot path — {date.today().isoformat()}", "",
             f"Machine: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}; one worker; "
             f"wrk {duration:g} s per cell; POST /api/v1/chat to the mock (direct p50 {direct['p50']:.0f} µs).", "",
             "| configuration | req/s at c=32 | p50 at c=1 | p99 at c=1 | added p50 | cost per request vs first row |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in results:
        cost = 1e6 / r["rps"] - 1e6 / floor
        lines.append(f"| {name} | {r['rps']:,.0f} | {r['p50']:.0f} µs | {r['p99']:.0f} µs | "
                     f"{r['p50'] - direct['p50']:.0f} µs | {cost:+.1f} µs |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
