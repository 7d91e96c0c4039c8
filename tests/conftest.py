import os

import pytest

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.cloudflare import FakeCloudflare
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai import FakeOpenAI
from tests.support.node import Node

OPENAI_KEY = "sk-test-openai-0123456789"
ANTHROPIC_KEY = "sk-ant-test-0123456789"


@pytest.fixture(scope="session", autouse=True)
def _data_dir(tmp_path_factory):
    """Apps built inside the test process keep their database in a temporary directory too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LLMRELAY_DATA_DIR", str(tmp_path_factory.mktemp("data")))
        yield


@pytest.fixture(scope="session")
def ollama():
    server = FakeOllama().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def openai_upstream():
    server = FakeOpenAI(OPENAI_KEY).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def anthropic_upstream():
    server = FakeAnthropic(ANTHROPIC_KEY).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cloudflare():
    server = FakeCloudflare().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_fakes(request):
    """Each test sees only its own requests on whichever fakes it uses."""
    for name in ("ollama", "openai_upstream", "anthropic_upstream", "cloudflare"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()


@pytest.fixture(scope="session")
def node_env(ollama, openai_upstream, anthropic_upstream):
    return {"LLM_CHAT_URL": ollama.url + "/api/chat", "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": openai_upstream.url + "/v1", "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
            "ANTHROPIC_BASE_URL": anthropic_upstream.url}


@pytest.fixture(scope="session")
def node(node_env, tmp_path_factory):
    """One node in front of all three fake upstreams, shared by the tests that need nothing special."""
    with Node(node_env, cwd=tmp_path_factory.mktemp("node")) as running:
        yield running


@pytest.fixture
def start_node(tmp_path):
    """Start a node with its own settings; it is stopped after the test."""
    nodes = []

    def start(env=None, args=None, wait=True, cwd=None):
        started = Node(env, args, cwd=cwd or tmp_path).start(wait=wait)
        nodes.append(started)
        return started

    yield start
    for started in nodes:
        started.stop()


@pytest.fixture(scope="session")
def redis_server():
    from tests.support.servers import RedisServer
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server():
    from tests.support.servers import PostgresServer
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No node setting from the developer's shell, and a working directory of the test's own (no .env)."""
    for name in list(os.environ):
        if name.startswith("LLMRELAY_") or name in ("LLM_CHAT_URL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY",
                                                    "CLAUDE_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path
