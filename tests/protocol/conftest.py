import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.node import free_port


class TinyProxy:
    """A real tinyproxy on a free loopback port, in the foreground, logging every request to its own file."""

    def __init__(self, directory: Path, connect_ports: tuple[int, ...] = (), credentials: str | None = None):
        binary = shutil.which("tinyproxy")
        if binary is None:
            pytest.skip("tinyproxy is not installed: `apt-get install tinyproxy` (make test does)")
        self.port = free_port()
        self.log_path = directory / f"tinyproxy-{self.port}.log"
        lines = [f"Port {self.port}", "Listen 127.0.0.1", "Timeout 30", "Allow 127.0.0.1", "LogLevel Connect",
                 "MaxClients 64", *(f"ConnectPort {port}" for port in connect_ports)]
        if not connect_ports:
            lines.append("ConnectPort 1")  # no ConnectPort line at all would allow CONNECT to every port
        if credentials:
            lines.append("BasicAuth " + credentials.replace(":", " ", 1))
        config = directory / f"tinyproxy-{self.port}.conf"
        config.write_text("\n".join(lines) + "\n")
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen([binary, "-d", "-c", str(config)], stdout=self._log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not self._accepts():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tinyproxy did not start:\n{self.log()}")
            time.sleep(0.02)

    def _accepts(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def url(self, credentials: str | None = None) -> str:
        return f"http://{credentials + '@' if credentials else ''}127.0.0.1:{self.port}"

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture
def tinyproxy(tmp_path):
    """Starts tinyproxies with the given CONNECT ports (and credentials); stopped after the test."""
    started = []

    def start(connect_ports: tuple[int, ...] = (), credentials: str | None = None) -> TinyProxy:
        proxy = TinyProxy(tmp_path, connect_ports, credentials)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture(scope="session")
def test_ca():
    import trustme
    return trustme.CA()


@pytest.fixture
def ca_file(test_ca, tmp_path, monkeypatch):
    """The test CA as SSL_CERT_FILE: contexts made afterwards trust it (and only it)."""
    path = tmp_path / "ca.pem"
    test_ca.cert_pem.write_to_path(str(path))
    monkeypatch.setenv("SSL_CERT_FILE", str(path))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return path
