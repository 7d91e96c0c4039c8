"""`llmrelay serve` and its options."""

import json
import os
import signal
import socket
import time
from pathlib import Path

import httpx

from tests.support.node import Node, free_port

BODY = json.dumps({"model": "llama3", "messages": [], "stream": False}).encode()


def children_of(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def test_serve_help_lists_the_options():
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "llmrelay", "serve", "--help"], capture_output=True,
                            text=True, env={**os.environ, "COLUMNS": "200"})
    for option in ("--host", "--port", "--config", "--workers", "--log-format"):
        assert option in result.stdout


def test_host_option_binds_that_address(ollama, tmp_path):
    port = free_port()
    node = Node({"LLM_CHAT_URL": ollama.url}, args=["--host", "127.0.0.2"], cwd=tmp_path, port=port)
    node.url = f"http://127.0.0.2:{port}"
    with node:
        assert httpx.get(node.url + "/health").status_code == 200
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            raise AssertionError("the node answered on an address it was not bound to")
        except httpx.ConnectError:
            pass


def test_workers_option_starts_several_worker_processes(start_node, ollama):
    node = start_node({"LLM_CHAT_URL": ollama.url}, args=["--workers", "2"])
    for _ in range(10):
        assert httpx.post(node.url + "/api/v1/chat", content=BODY).status_code == 200
    assert len(children_of(node.process.pid)) >= 2


def sockets_on_port(port: int) -> dict[int, str]:
    """The inodes of the TCP sockets on local `port` (IPv4), with their state: "0A" listening, "01" connected."""
    found = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port:
            found[int(fields[9])] = fields[3]
    return found


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


CLIENTS = 64


def test_workers_share_a_burst_of_connections(start_node, ollama):
    """Connections that arrive together are spread over the workers, even when one worker gets to them first
    (with one listening socket shared by all, that worker took them all: 63 of 64 from wrk, say)."""
    node = start_node({"LLM_CHAT_URL": ollama.url}, args=["--workers", "2"])
    deadline = time.monotonic() + 20
    while True:  # both workers listening (the node answers as soon as one is)
        listening = {inode for inode, state in sockets_on_port(node.port).items() if state == "0A"}
        workers = [pid for pid in children_of(node.process.pid) if socket_inodes(pid) & listening]
        if len(workers) == 2:
            break
        assert time.monotonic() < deadline, "the second worker did not start listening"
        time.sleep(0.1)
    request = (b"POST /api/v1/chat HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
               b"content-length: %d\r\n\r\n%b" % (len(BODY), BODY))
    clients = [socket.socket() for _ in range(CLIENTS)]
    try:
        for pid in workers:  # both busy while the connections come in; the kernel completes them meanwhile
            os.kill(pid, signal.SIGSTOP)
        for client in clients:
            client.setblocking(False)
            client.connect_ex(("127.0.0.1", node.port))
        os.kill(workers[0], signal.SIGCONT)
        time.sleep(0.3)  # the first worker free takes what it may
        os.kill(workers[1], signal.SIGCONT)
        for client in clients:
            client.setblocking(True)
            client.sendall(request)
        for client in clients:  # every connection answered, so every one was accepted
            assert client.recv(65536).startswith(b"HTTP/1.1 200")
        connected = {inode for inode, state in sockets_on_port(node.port).items() if state == "01"}
        shares = sorted(len(socket_inodes(pid) & connected) for pid in workers)
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
        for client in clients:
            client.close()
    assert sum(shares) == CLIENTS
    assert shares[0] >= CLIENTS // 4, f"connections per worker: {shares}"


def test_workers_refuse_a_port_another_node_listens_on(start_node, ollama, tmp_path):
    """Each worker listens with SO_REUSEPORT, which would let a second node's workers join the same port and
    take half of its connections: the second node must refuse to start instead."""
    first = start_node({"LLM_CHAT_URL": ollama.url}, args=["--workers", "2"])
    second = Node({"LLM_CHAT_URL": ollama.url}, args=["--workers", "2"], cwd=tmp_path, port=first.port)
    second.start(wait=False)
    try:
        assert second.process.wait(20) == 3
        assert "cannot listen on 127.0.0.1:%d" % first.port in second.logs()
    finally:
        second.stop()
    assert httpx.post(first.url + "/api/v1/chat", content=BODY).status_code == 200


def test_banner_names_the_upstream_without_credentials(start_node, ollama):
    url = ollama.url.replace("http://", "http://admin:hunter2@")
    node = start_node({"LLM_CHAT_URL": url, "OPENAI_API_KEY": "sk-banner-secret"})
    logs = node.wait_for_log("upstream ollama")
    assert f"{ollama.url}/api/chat" in logs
    assert "hunter2" not in logs and "sk-banner-secret" not in logs


def test_banner_says_how_to_configure_when_nothing_is(start_node):
    node = start_node({"LLMRELAY_EMBEDDED": "false"})
    assert "set LLM_CHAT_URL" in node.wait_for_log("no upstream configured and the embedded model is not")
