"""Benchmark: the server and the upstream HTTP client, chosen by measurement. The same minimal relay (an ASGI
app: read the body, POST it to the mock's /api/chat, answer with the upstream's status and body) under uvicorn
(httptools, uvloop) with each client in turn — the node's own pooled HTTP/1.1 client (providers/http1.py),
aiohttp's and httpx's, each keeping its connections alive — then with the node's client under the node's own
server protocol and under granian (if installed: the bench extra); the whole node for reference. wrk at
concurrency 1 and 32.

    python bench/clients.py [--duration 5] [--rounds 2] [--quick]
    python bench/clients.py --serve SERVER CLIENT --port PORT --upstream URL    (one relay, what the bench starts)
"""

import argparse
import importlib.util
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from run import (  # noqa: E402
    WRK_SCRIPT,
    ensure_tools,
    free_port,
    machine_line,
    measure_cpu,
    run_wrk,
    save_result,
    wait_until_up,
)

CLIENTS = ("llmrelay", "aiohttp", "httpx")
SERVERS = ("uvicorn", "node-protocol", "granian")
RELAYS = [("uvicorn", client) for client in CLIENTS] + [("node-protocol", "llmrelay"), ("granian", "llmrelay")]
SERVER_NAMES = {"uvicorn": "uvicorn (httptools, uvloop)", "node-protocol": "the node's server protocol",
                "granian": "granian (uvloop)"}
HEADERS = {"content-type": "application/json"}


def relay_app(client_name: str, upstream_url: str):
    """The ASGI app relaying every request through `client_name`'s client; the client is made at startup."""
    post = None

    async def start():
        nonlocal post
        if client_name == "llmrelay":
            from llmrelay.providers.http_client import UpstreamClient
            from llmrelay.providers.upstream import Upstream
            client = UpstreamClient(5, 60)
            upstream = Upstream("mock", upstream_url, upstream_url, upstream_url, "bench")
            await client.open([upstream])
            lines = [b"content-type: application/json"]

            async def post(body):
                response = await client.post(upstream, body, lines)
                return response.status, await response.read()
        elif client_name == "aiohttp":
            import aiohttp
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

            async def post(body):
                async with session.post(upstream_url, data=body, headers=HEADERS) as response:
                    return response.status, await response.read()
        else:
            import httpx
            client = httpx.AsyncClient(limits=httpx.Limits(max_connections=None, max_keepalive_connections=None))

            async def post(body):
                response = await client.post(upstream_url, content=body, headers=HEADERS)
                return response.status_code, response.content

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await start()
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        status, data = await post(body)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]})
        await send({"type": "http.response.body", "body": data})

    return app


def serve(server: str, client_name: str, port: int, upstream_url: str) -> None:
    if server == "granian":
        from granian import Granian
        os.environ.update(BENCH_CLIENT=client_name, BENCH_UPSTREAM=upstream_url)
        Granian("clients:granian_app", address="127.0.0.1", port=port, interface="asgi", workers=1, loop="uvloop",
                factory=True, log_enabled=False).serve()
        return
    import uvicorn
    if server == "node-protocol":
        from llmrelay.server_protocol import HttpServerProtocol as http
    else:
        http = "httptools"
    uvicorn.run(relay_app(client_name, upstream_url), host="127.0.0.1", port=port, loop="uvloop", http=http,
                lifespan="on", access_log=False, proxy_headers=False, log_level="warning")


def granian_app():
    """granian's worker imports the app by name: this makes it from what `serve` put in the environment."""
    return relay_app(os.environ["BENCH_CLIENT"], os.environ["BENCH_UPSTREAM"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="one short round, not saved: to show the bench works")
    parser.add_argument("--serve", nargs=2, metavar=("SERVER", "CLIENT"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        serve(*options.serve, options.port, options.upstream)
        return
    if options.quick:
        options.duration, options.rounds = 1, 1
    wrk, _ = ensure_tools()
    mock_port = free_port()
    mock_url = f"http://127.0.0.1:{mock_port}/api/chat"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMRELAY_", "OPENAI_", "ANTHROPIC_"))}
    env.update(LLM_CHAT_URL=f"http://127.0.0.1:{mock_port}", LLMRELAY_EMBEDDED="false")
    results: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as work:
        script = Path(work) / "post.lua"
        script.write_text(WRK_SCRIPT)
        processes = [subprocess.Popen([sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port",
                                       str(mock_port)])]
        targets = []  # (name, url, process)
        try:
            for server, client in RELAYS:
                if server == "granian" and importlib.util.find_spec("granian") is None:
                    print("granian is not installed (pip install -e '.[bench]'): its row is left out")
                    continue
                port = free_port()
                processes.append(subprocess.Popen(
                    [sys.executable, __file__, "--serve", server, client, "--port", str(port), "--upstream", mock_url],
                    env={**os.environ, "PYTHONPATH": str(ROOT / "bench")}))
                targets.append((f"{SERVER_NAMES[server]}, {client}'s client", f"http://127.0.0.1:{port}/",
                                processes[-1]))
            port = free_port()
            processes.append(subprocess.Popen([sys.executable, "-m", "llmrelay", "serve", "--port", str(port)],
                                              env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            targets.append(("the node (/api/v1/chat, everything on)", f"http://127.0.0.1:{port}/api/v1/chat",
                            processes[-1]))
            wait_until_up(f"http://127.0.0.1:{mock_port}/")
            for _, url, _ in targets:
                wait_until_up(url.rsplit("/", 1)[0] + "/")
                run_wrk(wrk, url, 8, 1, str(script))  # connections pooled, code warm
            for _ in range(options.rounds):  # rounds take turns: this machine's speed drifts within a minute
                direct = {c: run_wrk(wrk, mock_url, c, options.duration, str(script)) for c in (1, 32)}
                for name, url, process in targets:
                    one = run_wrk(wrk, url, 1, options.duration, str(script))
                    loaded = measure_cpu(process.pid, lambda: run_wrk(wrk, url, 32, options.duration, str(script)),
                                         options.duration)
                    results.setdefault(name, []).append((one["p50"] - direct[1]["p50"], one["p99"] - direct[1]["p99"],
                                                         loaded["rps"], loaded["cpu"] * 1e6,
                                                         one["errors"] + loaded["errors"]))
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
                process.wait(10)
    table = render(results, options)
    print(table)
    if not options.quick:
        save_result("clients", table)
    if any(errors for rounds in results.values() for *_, errors in rounds):
        sys.exit("a relay answered some requests with errors; see the table")


def render(results: dict, options) -> str:
    lines = [f"# The upstream HTTP client, {date.today().isoformat()}", "",
             f"{machine_line()}. The same relay app under each server with each client, POST /api/chat to "
             f"the mock; wrk -t1, {options.duration:g} s per cell, {options.rounds} round(s) taking turns, medians "
             "of the rounds. Added = the relay's percentile minus the mock's own at the same concurrency.", "",
             "| relay | added p50 at 1 | added p99 at 1 | req/s at 32 | CPU per request at 32 | errors |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, rounds in results.items():
        p50, p99, rps, cpu = (statistics.median(column) for column in list(zip(*rounds))[:4])
        errors = sum(round_[4] for round_ in rounds)
        lines.append(f"| {name} | {p50:.0f} µs | {p99:.0f} µs | {rps:,.0f} | {cpu:.0f} µs | {errors} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
