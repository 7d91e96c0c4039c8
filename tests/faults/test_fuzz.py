"""Fuzzing every endpoint of /openapi.json with schemathesis (a bounded number of examples per endpoint).

The node may answer 4xx, and 502/503/504 when an upstream fails (the fakes refuse plenty of what the fuzzer
sends), but never 500 — that would be the node's own failure — and every error is a JSON error body.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.support.node import Node


@pytest.fixture(scope="module")
def fuzzed_node(ollama, openai_upstream, anthropic_upstream, tmp_path_factory):
    env = {"LLM_CHAT_URL": ollama.url, "OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": openai_upstream.url + "/v1",
           "ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_BASE_URL": anthropic_upstream.url,
           "LLMRELAY_EMBEDDED": "false", "LLMRELAY_RETRIES": "0", "LLMRELAY_FIRST_BYTE_TIMEOUT": "5"}
    with Node(env, cwd=tmp_path_factory.mktemp("fuzz")) as node:
        yield node


def test_no_endpoint_fails_inside_the_node(fuzzed_node):
    # Driven through hypothesis directly: schemathesis' pytest plugin does not load under this pytest.
    schema = schemathesis.openapi.from_url(fuzzed_node.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 17

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case):
            response = case.call(base_url=fuzzed_node.url, timeout=15)
            assert response.status_code != 500, f"{case.method} {case.path} -> 500: {response.text[:500]}"
            if response.status_code >= 400:
                content_type = response.headers.get("content-type") or [""]  # schemathesis lists header values
                assert content_type[0].startswith("application/json"), response.text[:300]
                assert "error" in response.json(), response.text[:300]

        call()
