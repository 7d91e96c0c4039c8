"""Benchmark: what the node adds on POST /api/v1/chat, against calling the mock upstream directly and
against nginx's proxy_pass (the floor any proxy can reach), measured in the same run.

Starts bench/mock_upstream.py, nginx and a node in front of it, drives each with wrk (Debian's packages;
installed when missing) at each concurrency, and prints a markdown table that is also saved under
bench/results/.

    python bench/run.py [--duration 5] [--concurrency 1 32 256] [--quick] [--no-litellm] [--record FILE]
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BODY = '{"model":"llama3","messages":[{"role":"user","content":"why is the sky blue?"}],"stream":false}'
OPENAI_BODY = BODY.replace("llama3", "gpt-4o-mini")


def wrk_script(body: str) -> str:
    return f"""wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
"""


WRK_SCRIPT = wrk_script(BODY)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_tools() -> tuple[str, str]:
    if not shutil.which("wrk") or not shutil.which("nginx"):
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk", "nginx-light"], check=True, stdout=subprocess.DEVNULL)
    return shutil.which("wrk"), shutil.which("nginx")


# One worker, kept-alive upstream connections, nothing buffered; the same listen backlog as the node (uvicorn's).
NGINX_CONF = """worker_processes 1;
worker_rlimit_nofile {connections};
error_log {work}/nginx-error.log;
pid {work}/nginx.pid;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    upstream backend {{ {servers} keepalive 256; }}
    server {{
        listen 127.0.0.1:{port} backlog=2048;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


LITELLM_VERSION = "1.108.7"  # the newest whose [proxy] extra resolves on the registry
LITELLM_CONFIG = """model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:{mock}/v1
      api_key: sk-bench
litellm_settings:
  telemetry: false
"""


def start_litellm(work: str, mock_port: int, port: int) -> subprocess.Popen:
    """LiteLLM's proxy in a virtualenv of its own (bench/.work/litellm, made on first use), one worker,
    forwarding gpt-4o-mini to the mock's OpenAI API."""
    venv = ROOT / "bench" / ".work" / "litellm"
    if not (venv / "bin" / "litellm").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"], check=True)
    config = Path(work) / "litellm.yaml"
    config.write_text(LITELLM_CONFIG.format(mock=mock_port))
    env = {**os.environ, "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    return subprocess.Popen([str(venv / "bin" / "litellm"), "--config", str(config), "--port", str(port),
                             "--num_workers", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_nginx(nginx: str, work: str, mock_port: int, port: int, connections: int = 4096) -> subprocess.Popen:
    conf = Path(work) / "nginx.conf"
    conf.write_text(NGINX_CONF.format(work=work, servers=f"server 127.0.0.1:{mock_port};", port=port,
                                      connections=connections))
    return subprocess.Popen([nginx, "-p", work, "-c", str(conf), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_until_up(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError as exc:
            if getattr(exc, "code", None):  # an HTTP error status still means it is up
                return
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def to_microseconds(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 1, "ms": 1000, "s": 1_000_000}[unit]


SETTLE = 0.5  # seconds between two wrk runs


def run_wrk(wrk: str, url: str, connections: int, duration: float, script: str) -> dict:
    # The last run's connections first: wrk closes them all when it stops and opens its new ones at once,
    # from the same ports. A server still busy with the last run's requests has not closed its ends yet, and a
    # new connection from a port whose old one it holds waits for the client's second SYN, a second later
    # (p99 of 1.2-1.6 s at concurrency 256 through the node, on every second run back to back).
    time.sleep(SETTLE)
    output = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "30s", "--latency", "-s", script, url],
        capture_output=True, text=True, check=True).stdout
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    if "50" not in percentiles or "99" not in percentiles:
        raise RuntimeError(f"wrk gave no latency distribution for {url}:\n{output}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
            "p50": to_microseconds(percentiles["50"]), "p99": to_microseconds(percentiles["99"]),
            "errors": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32, 256])
    parser.add_argument("--quick", action="store_true", help="one short round, to show the bench works")
    parser.add_argument("--no-litellm", action="store_true", help="skip LiteLLM (its install takes minutes)")
    parser.add_argument("--record", metavar="FILE", help="add this run's numbers to FILE for bench/targets.py")
    options = parser.parse_args()
    duration = 1 if options.quick else options.duration

    wrk, nginx = ensure_tools()
    mock_port, node_port, nginx_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMRELAY_", "OPENAI_", "ANTHROPIC_"))}
    env["LLM_CHAT_URL"] = f"http://127.0.0.1:{mock_port}"
    env["OPENAI_API_KEY"] = "sk-bench"  # the mock ignores it; gpt-* models go to the mock's OpenAI API
    env["OPENAI_BASE_URL"] = f"http://127.0.0.1:{mock_port}/v1"
    with tempfile.TemporaryDirectory() as work:
        script = Path(work) / "post.lua"
        script.write_text(WRK_SCRIPT)
        openai_script = Path(work) / "openai.lua"
        openai_script.write_text(wrk_script(OPENAI_BODY))
        mock = subprocess.Popen([sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port", str(mock_port)])
        env["LLMRELAY_EMBEDDED"] = "false"
        node = subprocess.Popen([sys.executable, "-m", "llmrelay", "serve", "--port", str(node_port)], env=env,
                                cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proxy = start_nginx(nginx, work, mock_port, nginx_port)
        try:
            wait_until_up(f"http://127.0.0.1:{mock_port}/")
            wait_until_up(f"http://127.0.0.1:{node_port}/health")
            wait_until_up(f"http://127.0.0.1:{nginx_port}/")
            idle_rss = rss_mb(node.pid)
            rows, same_api = [], {}
            for connections in options.concurrency:
                direct = run_wrk(wrk, f"http://127.0.0.1:{mock_port}/api/chat", connections, duration, str(script))
                floor = run_wrk(wrk, f"http://127.0.0.1:{nginx_port}/api/chat", connections, duration, str(script))
                relayed = run_wrk(wrk, f"http://127.0.0.1:{node_port}/api/v1/chat", connections, duration,
                                  str(script))
                rows.append((connections, direct, floor, relayed, rss_mb(node.pid), rss_mb(proxy.pid)))
                same_api[connections] = run_wrk(wrk, f"http://127.0.0.1:{node_port}/v1/chat/completions",
                                                connections, duration, str(openai_script))
            # The same request through each path of the node, at concurrency 32 and 1 (its added p50 against
            # the mock's own API that path ends at).
            node_url, mock_url = f"http://127.0.0.1:{node_port}", f"http://127.0.0.1:{mock_port}"
            direct_ollama = run_wrk(wrk, mock_url + "/api/chat", 1, duration, str(script))
            direct_openai = run_wrk(wrk, mock_url + "/v1/chat/completions", 1, duration, str(openai_script))
            paths = []
            for name, path, request, direct_one in (
                    ("/api/v1/chat, seed pass-through to Ollama", "/api/v1/chat", script, direct_ollama),
                    ("/v1/chat/completions, same API (OpenAI to OpenAI)", "/v1/chat/completions", openai_script,
                     direct_openai),
                    ("/v1/chat/completions, translated (OpenAI to Ollama)", "/v1/chat/completions", script,
                     direct_ollama)):
                loaded = measure_cpu(node.pid, lambda: run_wrk(wrk, node_url + path, 32, duration, str(request)),
                                     duration)
                one = run_wrk(wrk, node_url + path, 1, duration, str(request))
                paths.append((name, loaded, one["p50"] - direct_one["p50"]))
        finally:
            for process in (node, mock, proxy):
                process.send_signal(signal.SIGTERM)
                process.wait(10)
        # --workers: the same node with one worker per core, against the same mock.
        mock = subprocess.Popen([sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port", str(mock_port)])
        workers = os.cpu_count() or 1
        node = subprocess.Popen([sys.executable, "-m", "llmrelay", "serve", "--port", str(node_port), "--workers",
                                 str(workers)], env=env, cwd=work, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            wait_until_up(f"http://127.0.0.1:{mock_port}/")
            wait_until_up(f"http://127.0.0.1:{node_port}/health")
            run_wrk(wrk, f"http://127.0.0.1:{node_port}/api/v1/chat", 64, 1, str(script))  # every worker warm
            scaled = measure_cpu(node.pid, lambda: run_wrk(wrk, f"http://127.0.0.1:{node_port}/api/v1/chat", 64,
                                                           duration, str(script)), duration)
        finally:
            for process in (node, mock):
                process.send_signal(signal.SIGTERM)
                process.wait(10)

    litellm_rps = {}
    if not (options.quick or options.no_litellm):
        table_litellm, litellm_rps = compare_litellm(wrk, duration, options.concurrency, same_api)
    else:
        table_litellm = "\nLiteLLM: not measured in this run (--quick or --no-litellm).\n"
    table = (render(rows, duration) + f"\nThe node's RSS idle (started, before any request): {idle_rss:.0f} MB.\n"
             + render_paths(paths) + table_litellm)
    one_worker = paths[0][1]  # one worker, concurrency 32
    table += (f"\nWith `--workers {workers}` (concurrency 64): {scaled['rps']:,.0f} req/s, "
              f"{scaled['rps'] / one_worker['rps']:.2f} × one worker (wrk, the mock and the workers share the "
              f"{workers} cores). Node CPU time per request: {one_worker['cpu'] * 1e6:.0f} µs with one worker, "
              f"{scaled['cpu'] * 1e6:.0f} µs with {workers} (the work per request does not grow with workers: "
              "throughput grows with the cores the node gets). Cores the node kept busy: "
              f"{one_worker['rps'] * one_worker['cpu']:.2f} with one worker, {scaled['rps'] * scaled['cpu']:.2f} "
              f"with {workers} (what wrk and the mock leave it on this machine).\n")
    print(table)
    at_32 = {connections: (floor, relayed) for connections, _, floor, relayed, _, _ in rows}.get(32)
    record(options.record, rss_idle_mb=idle_rss, c1_added_p50_seed_us=paths[0][2],
           c1_added_p50_same_api_us=paths[1][2], translated_cpu_ratio=paths[2][1]["cpu"] / paths[0][1]["cpu"],
           workers_cpu_ratio=scaled["cpu"] / one_worker["cpu"], workers_rps_ratio=scaled["rps"] / one_worker["rps"],
           **({"c32_share_of_nginx": at_32[1]["rps"] / at_32[0]["rps"]} if at_32 else {}),
           **({"c32_times_litellm": same_api[32]["rps"] / litellm_rps[32]} if 32 in litellm_rps else {}))
    if not options.quick:
        path = save_result("passthrough", table)
        chart = draw_chart(rows, path.with_suffix(".png"))
        if chart:
            print(f"chart in {chart.relative_to(ROOT)}")
    if any(relayed["errors"] or relayed["socket_errors"] for _, _, _, relayed, _, _ in rows):
        sys.exit("the node answered some requests with errors; see the table")


def machine_line() -> str:
    cpu = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
    return (f"Machine: {platform.machine()}, {os.cpu_count()} cores{f' ({cpu.group(1)})' if cpu else ''}, "
            f"Python {platform.python_version()}")


def record(path: str | None, **values: float) -> None:
    """Add `values` to the JSON file at `path`, which bench/targets.py reads (nothing when no path is given)."""
    if not path:
        return
    file = Path(path)
    measured = json.loads(file.read_text()) if file.exists() else {}
    measured.update(values)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(measured, indent=1))


def save_result(name: str, table: str) -> Path:
    """Keep a run's table as <name>.md: in bench/results/ (tracked, the latest of each benchmark; older ones are in
    git's history) when LLMRELAY_BENCH_KEEP=1, as `make bench` sets it, else in the ignored bench/.work/results/."""
    folder = RESULTS if os.environ.get("LLMRELAY_BENCH_KEEP") == "1" else ROOT / "bench" / ".work" / "results"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.md"
    path.write_text(f"Measured on {date.today().isoformat()}.\n\n{table}")
    print(f"saved to {path.relative_to(ROOT)}")
    return path


def process_tree(pid: int) -> dict[int, tuple[str, str]]:
    """/proc/<pid>/stat and /proc/<pid>/status of a process and of its children still running (nginx's worker,
    uvicorn's workers)."""
    files, pending = {}, [pid]
    while pending:
        current = pending.pop()
        try:
            files[current] = (Path(f"/proc/{current}/stat").read_text(), Path(f"/proc/{current}/status").read_text())
            pending.extend(int(child) for child in Path(f"/proc/{current}/task/{current}/children").read_text().split())
        except OSError:
            files.pop(current, None)
    return files


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children."""
    total = 0.0
    for stat, _ in process_tree(pid).values():
        fields = stat.rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def measure_cpu(pid: int, run, duration: float) -> dict:
    """`run()`'s wrk result, with the node's CPU seconds per request added as "cpu"."""
    before = cpu_seconds(pid)
    result = run()
    result["cpu"] = (cpu_seconds(pid) - before) / max(1.0, result["rps"] * duration)
    return result


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    kilobytes = sum(next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
                    for _, status in process_tree(pid).values())
    return kilobytes / 1024


def draw_chart(rows, path: Path) -> Path | None:
    """Requests/s and added p50 by concurrency for nginx and the node, as a PNG (needs matplotlib: .[bench])."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no chart: install the bench extra (pip install -e '.[bench]') for matplotlib")
        return None
    labels = [str(connections) for connections, *_ in rows]
    figure, (throughput, latency) = plt.subplots(1, 2, figsize=(10, 4))
    for index, (name, pick) in enumerate((("direct", 1), ("nginx", 2), ("llmrelay", 3))):
        offsets = [i + (index - 1) * 0.27 for i in range(len(rows))]
        throughput.bar(offsets, [row[pick]["rps"] for row in rows], width=0.27, label=name)
        if pick != 1:
            latency.bar(offsets, [row[pick]["p50"] - row[1]["p50"] for row in rows], width=0.27, label=name,
                        color=f"C{index}")
    for axis, title in ((throughput, "requests/s"), (latency, "added latency p50 (µs)")):
        axis.set_xticks(range(len(rows)), labels)
        axis.set_xlabel("concurrency")
        axis.set_title(title)
        axis.legend()
    latency.set_yscale("log")
    figure.suptitle(f"POST /api/v1/chat through a proxy, {platform.machine()}, {os.cpu_count()} cores, "
                    f"{date.today().isoformat()}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def compare_litellm(wrk: str, duration: float, concurrency: list[int],
                    node_same_api: dict[int, dict]) -> tuple[str, dict[int, float]]:
    """LiteLLM's proxy and the node on the same path (an OpenAI client to an OpenAI-compatible upstream), at each
    concurrency: throughput, added latency against the mock's own API, RSS and errors. Returns the table and
    LiteLLM's requests/s by concurrency."""
    mock_port, port = free_port(), free_port()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        script = Path(work) / "openai.lua"
        script.write_text(wrk_script(OPENAI_BODY))
        mock = subprocess.Popen([sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port", str(mock_port)])
        litellm = start_litellm(work, mock_port, port)
        try:
            wait_until_up(f"http://127.0.0.1:{port}/health/liveliness", timeout=180)
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            run_wrk(wrk, url, 1, 1, str(script))  # its first requests set up what it caches
            for connections in concurrency:
                direct = run_wrk(wrk, f"http://127.0.0.1:{mock_port}/v1/chat/completions", connections, duration,
                                 str(script))
                rows.append((connections, direct, run_wrk(wrk, url, connections, duration, str(script)),
                             rss_mb(litellm.pid)))
        finally:
            for process in (litellm, mock):
                process.send_signal(signal.SIGTERM)
                process.wait(30)
    lines = ["", f"LiteLLM {LITELLM_VERSION} proxy (one worker) and the node on the same path: /v1/chat/completions to "
             "the mock's OpenAI API. Added latency against the mock's own API at the same concurrency; LiteLLM's "
             "errors are non-2xx answers and socket errors (wrk's timeout is 30 s).", "",
             "| concurrency | LiteLLM req/s | LiteLLM added p50 | LiteLLM added p99 | LiteLLM RSS | LiteLLM errors "
             "| node req/s | node added p50 | node added p99 | node / LiteLLM |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for connections, direct, litellm, rss in rows:
        node = node_same_api[connections]
        lines.append(f"| {connections} | {litellm['rps']:,.0f} | {litellm['p50'] - direct['p50']:.0f} µs "
                     f"| {litellm['p99'] - direct['p99']:.0f} µs | {rss:.0f} MB "
                     f"| {litellm['errors']} {litellm['socket_errors']} | {node['rps']:,.0f} "
                     f"| {node['p50'] - direct['p50']:.0f} µs | {node['p99'] - direct['p99']:.0f} µs "
                     f"| {node['rps'] / litellm['rps']:.0f} × |")
    return "\n".join(lines) + "\n", {connections: litellm["rps"] for connections, _, litellm, _ in rows}


def render_paths(paths) -> str:
    base = paths[0][1]
    lines = ["", "| path | req/s at 32 | p50 at 32 | added p50 at 1 | node CPU per request (at 32) "
             "| vs the seed pass-through: CPU, throughput |", "|---|---:|---:|---:|---:|---:|"]
    for name, loaded, added_one in paths:
        lines.append(f"| {name} | {loaded['rps']:,.0f} | {loaded['p50']:.0f} µs | {added_one:.0f} µs "
                     f"| {loaded['cpu'] * 1e6:.0f} µs | {loaded['cpu'] / base['cpu']:.2f} ×, "
                     f"{base['rps'] / loaded['rps']:.2f} × |")
    return "\n".join(lines) + "\n"


def render(rows, duration: float) -> str:
    lines = [
        f"# POST /api/v1/chat pass-through, {date.today().isoformat()}",
        "",
        f"{machine_line()}, one node worker, nginx with one worker; wrk -t1, {duration:g} s per cell; the mock "
        "upstream answers at once. Added latency = the proxy's percentile minus the direct one.",
        "",
        "| concurrency | direct req/s | nginx req/s | node req/s | node / nginx | nginx added p50 | nginx added p99 "
        "| node added p50 | node added p99 | nginx RSS | node RSS | node errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for connections, direct, floor, relayed, rss, nginx_rss in rows:
        lines.append(
            f"| {connections} | {direct['rps']:,.0f} | {floor['rps']:,.0f} | {relayed['rps']:,.0f} "
            f"| {relayed['rps'] / floor['rps'] * 100:.0f} % | {floor['p50'] - direct['p50']:.0f} µs "
            f"| {floor['p99'] - direct['p99']:.0f} µs | {relayed['p50'] - direct['p50']:.0f} µs "
            f"| {relayed['p99'] - direct['p99']:.0f} µs | {nginx_rss:.0f} MB | {rss:.0f} MB "
            f"| {relayed['errors']} {relayed['socket_errors']} |")
    return "\n".join(lines) + "\n"

if __name__ == "__main__":
    main()
