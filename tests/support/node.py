"""Starts the real node as a subprocess (`python -m llmrelay serve`) on a free loopback port."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

# Variables from the developer's shell that would change what the node under test does.
_NODE_VARIABLES = ("LLM_CHAT_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "CLAUDE_API_KEY",
                   "ANTHROPIC_BASE_URL")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Node:
    def __init__(self, env: dict[str, str] | None = None, args: list[str] | None = None,
                 cwd: Path | None = None, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cwd = cwd
        self.log_path = Path(cwd or "/tmp") / f"llmrelay-node-{self.port}.log"
        self.env = {k: v for k, v in os.environ.items()
                    if k not in _NODE_VARIABLES and not k.startswith("LLMRELAY_")}
        # Each node keeps its keys and usage records in a directory of its own, never in the user's home.
        # (under the test's own directory when it has one: pytest cleans those up)
        self.env["LLMRELAY_DATA_DIR"] = (str(Path(cwd) / f"data-{self.port}") if cwd
                                         else tempfile.mkdtemp(prefix="llmrelay-data-"))
        self.env.update(env or {})
        self.args = args or []
        self.process: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> "Node":
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llmrelay", "serve", "--port", str(self.port), *self.args],
            env=self.env, cwd=self.cwd, stdout=self._log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the node exited with {self.process.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the node did not become healthy:\n{self.logs()}")

    def logs(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 5) -> str:
        """The log once it contains `text` (the access log is written in the background)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            logs = self.logs()
            if text in logs:
                return logs
            time.sleep(0.02)
        raise AssertionError(f"{text!r} not in the node's log:\n{self.logs()}")

    def stop(self) -> int:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> "Node":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
