"""Benchmark: two clustered nodes behind nginx against one node, on the same mock upstream.

Both nodes share a Redis of their own (LLMRELAY_REDIS_URL, LLMRELAY_CLUSTER_SECRET), as a cluster would;
nginx balances them (least_conn, kept-alive connections). wrk drives POST /api/v1/chat at concurrency 64.
On a machine with few cores, wrk, nginx, the mock and the nodes share them: the ratio shows what a second
node adds here, not what a second machine would.

    python bench/cluster_scaling.py [--duration 5]
"""

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from run import (  # noqa: E402
    NGINX_CONF,
    WRK_SCRIPT,
    ensure_tools,
    free_port,
    run_wrk,
    save_result,
    wait_until_up,
)


def start_node(env: dict, port: int, work: str) -> subprocess.Popen:
    node = subprocess.Popen([sys.executable, "-m", "llmrelay", "serve", "--port", str(port)],
                            env={**env, "LLMRELAY_DATA_DIR": tempfile.mkdtemp(dir=work)}, cwd=work,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until_up(f"http://127.0.0.1:{port}/health")
    return node


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5)
    options = parser.parse_args()
    wrk, nginx = ensure_tools()
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        sys.exit("redis-server is not installed: apt-get install redis-server")
    mock_port, redis_port, first, second, proxy_port = (free_port() for _ in range(5))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMRELAY_", "OPENAI_", "ANTHROPIC_"))}
    env.update(LLM_CHAT_URL=f"http://127.0.0.1:{mock_port}", LLMRELAY_EMBEDDED="false",
               LLMRELAY_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0", LLMRELAY_CLUSTER_SECRET="bench-cluster-secret")
    processes = []
    with tempfile.TemporaryDirectory() as work:
        script = Path(work) / "post.lua"
        script.write_text(WRK_SCRIPT)
        try:
            processes.append(subprocess.Popen([sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port",
                                               str(mock_port)]))
            processes.append(subprocess.Popen([redis_server, "--port", str(redis_port), "--bind", "127.0.0.1",
                                               "--save", "", "--appendonly", "no", "--dir", work],
                                              stdout=subprocess.DEVNULL))
            wait_until_up(f"http://127.0.0.1:{mock_port}/")
            processes.append(start_node(env, first, work))
            one = run_wrk(wrk, f"http://127.0.0.1:{first}/api/v1/chat", 64, options.duration, str(script))
            processes.append(start_node(env, second, work))
            conf = Path(work) / "nginx.conf"
            servers = f"least_conn; server 127.0.0.1:{first}; server 127.0.0.1:{second};"
            conf.write_text(NGINX_CONF.format(work=work, servers=servers, port=proxy_port, connections=4096))
            processes.append(subprocess.Popen([nginx, "-p", work, "-c", str(conf), "-g", "daemon off;"],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_until_up(f"http://127.0.0.1:{proxy_port}/health")
            two = run_wrk(wrk, f"http://127.0.0.1:{proxy_port}/api/v1/chat", 64, options.duration, str(script))
        finally:
            for process in reversed(processes):
                process.send_signal(signal.SIGTERM)
                process.wait(30)
    if one["errors"] or two["errors"]:
        sys.exit(f"errors: one node {one['errors']}, two nodes {two['errors']}")
    table = (f"# Two clustered nodes behind nginx — {date.today().isoformat()}\n\n"
             f"Machine: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}; wrk {options.duration:g} s "
             "at concurrency 64, POST /api/v1/chat to the mock; nodes share a Redis (cluster on).\n\n"
             "| setup | req/s | p50 | p99 |\n|---|---:|---:|---:|\n"
             f"| one node | {one['rps']:,.0f} | {one['p50']:.0f} µs | {one['p99']:.0f} µs |\n"
             f"| two nodes behind nginx | {two['rps']:,.0f} | {two['p50']:.0f} µs | {two['p99']:.0f} µs |\n\n"
             f"Two nodes give {two['rps'] / one['rps']:.2f} × one node (wrk, nginx, the mock and both nodes share "
             f"the {os.cpu_count()} cores).\n")
    print(table)
    save_result("cluster-scaling", table)


if __name__ == "__main__":
    main()
