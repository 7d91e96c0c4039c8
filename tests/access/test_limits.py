"""Rate limits per key and per model: exact at the boundary, in memory and in Redis across nodes."""

import asyncio
import json
import os
import socket
import time

import httpx
import openai
import pytest
import redis.asyncio as aioredis

from llmrelay.access.limits import Budget, LocalLimits, RedisLimits
from llmrelay.core.errors import RateLimited
from tests.fakes.brain import DEFAULT_WORDS, PROMPT_TOKENS
from tests.support.admin import MASTER, QUESTION, create_key, eventually
from tests.support.node import free_port

# The fake answers every plain question with the same counts.
TOKENS_PER_ANSWER = PROMPT_TOKENS + len(DEFAULT_WORDS)
BODY = json.dumps({"model": "llama3", "messages": QUESTION, "stream": False}).encode()
ESTIMATE = len(BODY) // 4  # the node's up-front estimate of the prompt: 4 bytes a token


@pytest.fixture
def keyed_node(start_node, node_env):
    return start_node({**node_env, "LLMRELAY_MASTER_KEY": MASTER})


def chat(node, key: str, body: bytes = BODY) -> httpx.Response:
    return httpx.post(node.url + "/api/v1/chat", content=body, headers={"authorization": f"Bearer {key}"})


def test_requests_per_minute_hold_exactly_at_the_limit(keyed_node):
    key = create_key(keyed_node, rpm=3)
    assert [chat(keyed_node, key["key"]).status_code for _ in range(3)] == [200, 200, 200]
    refused = chat(keyed_node, key["key"])
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-limit-requests"] == "3"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert f"{key['id']} is over its limit of 3 requests per minute" in refused.json()["error"]["message"]
    # the OpenAI SDK reads it as its own rate-limit error
    client = openai.OpenAI(base_url=keyed_node.url + "/v1", api_key=key["key"], max_retries=0)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="llama3", messages=QUESTION)
    # another key has its own budget
    assert chat(keyed_node, create_key(keyed_node, rpm=3)["key"]).status_code == 200


@pytest.mark.parametrize("room, admitted", [(0, 3), (-1, 2)])
def test_tokens_per_minute_hold_exactly_at_the_limit(keyed_node, room, admitted):
    """Two answers used 2T tokens; a third fits only if 2T plus its estimated prompt is within the limit."""
    tpm = 2 * TOKENS_PER_ANSWER + ESTIMATE + room
    key = create_key(keyed_node, tpm=tpm)["key"]
    statuses = [chat(keyed_node, key).status_code for _ in range(4)]
    assert statuses == [200] * admitted + [429] * (4 - admitted)
    refused = chat(keyed_node, key)
    assert "tokens per minute" in refused.json()["error"]["message"]
    assert refused.headers["x-ratelimit-limit-tokens"] == str(tpm)
    assert refused.headers["x-ratelimit-remaining-tokens"] == str(max(0, tpm - admitted * TOKENS_PER_ANSWER))


def test_streamed_answers_count_their_tokens(keyed_node):
    key = create_key(keyed_node, tpm=TOKENS_PER_ANSWER + ESTIMATE)["key"]
    streamed = json.dumps({"model": "llama3", "messages": QUESTION, "stream": True}).encode()
    first = chat(keyed_node, key, streamed)
    assert first.status_code == 200 and first.text.count("\n") > 3
    assert chat(keyed_node, key, streamed).status_code == 200  # used T; T + estimate fits exactly
    assert chat(keyed_node, key, streamed).status_code == 429


def test_a_prompt_larger_than_the_limit_is_refused_with_a_reason(keyed_node):
    key = create_key(keyed_node, tpm=ESTIMATE - 1)["key"]
    refused = chat(keyed_node, key)
    assert refused.status_code == 429 and "larger than" in refused.json()["error"]["message"]


def test_tokens_per_day(keyed_node):
    key = create_key(keyed_node, tokens_per_day=TOKENS_PER_ANSWER + ESTIMATE)["key"]
    assert chat(keyed_node, key).status_code == 200
    assert chat(keyed_node, key).status_code == 200
    refused = chat(keyed_node, key)
    assert refused.status_code == 429 and "tokens per day" in refused.json()["error"]["message"]


def test_a_models_limit_holds_across_keys(start_node, node_env, ollama, tmp_path):
    (tmp_path / "llmrelay.yaml").write_text(f"""
models:
  - name: capped
    rpm: 2
    deployments:
      - provider: ollama
        base_url: {ollama.url}
        model: llama3
""")
    node = start_node({**node_env, "LLMRELAY_MASTER_KEY": MASTER}, cwd=tmp_path)
    alice, bob = create_key(node)["key"], create_key(node)["key"]
    body = json.dumps({"model": "capped", "messages": QUESTION, "max_tokens": 5}).encode()

    def ask(key):
        return httpx.post(node.url + "/v1/chat/completions", content=body,
                          headers={"authorization": f"Bearer {key}"})
    assert [ask(alice).status_code, ask(bob).status_code] == [200, 200]
    refused = ask(alice)
    assert refused.status_code == 429 and "model capped" in refused.json()["error"]["message"]
    assert httpx.post(node.url + "/v1/chat/completions", headers={"authorization": f"Bearer {bob}"},
                      json={"model": "llama3", "messages": QUESTION}).status_code == 200  # other models are free


def test_limits_in_redis_hold_across_nodes(start_node, node_env, redis_server, postgres_server):
    database = postgres_server.create_database(f"limits_{os.getpid()}_{free_port()}")
    env = {**node_env, "LLMRELAY_MASTER_KEY": MASTER, "LLMRELAY_DATABASE_URL": database,
           "LLMRELAY_REDIS_URL": redis_server.url}
    first, second = start_node(env), start_node(env)
    created = create_key(first, rpm=4)
    # the second node picks the key up within a second; until then it refuses it as unknown
    assert eventually(lambda: chat(second, created["key"]).status_code != 401, 3)
    statuses = [chat(node, created["key"]).status_code for node in (first, second) * 3]
    assert sorted(statuses) == [200, 200, 200, 429, 429, 429]  # 4 in all, one of them above
    # the counters are in Redis, under the key's id, never the key itself
    stored = [name.decode() for name in redis_server.client().keys("*")]
    assert any(created["id"] in name for name in stored)
    assert not any(created["key"] in name for name in stored)


def test_a_node_that_loses_redis_keeps_serving_and_says_so(start_node, node_env):
    from tests.support.servers import RedisServer
    redis_server = RedisServer()  # its own: this test stops it
    try:
        node = start_node({**node_env, "LLMRELAY_MASTER_KEY": MASTER, "LLMRELAY_REDIS_URL": redis_server.url})
        key = create_key(node, rpm=100)["key"]
        assert chat(node, key).status_code == 200
    finally:
        redis_server.stop()
    assert [chat(node, key).status_code for _ in range(3)] == [200, 200, 200]
    logs = node.wait_for_log("the rate-limit store failed")
    assert logs.count("the rate-limit store failed") == 1  # said once, not once per request


def test_a_redis_that_stops_answering_costs_one_request_its_timeout_not_every_request(start_node, node_env):
    """A Redis whose host takes connections and never answers: the node counts on its own for a second
    after each failure instead of making every request wait out the store's timeout (0.5 s)."""
    silent = socket.create_server(("127.0.0.1", 0), backlog=64)  # never accepts: connects land, nothing answers
    try:
        node = start_node({**node_env, "LLMRELAY_MASTER_KEY": MASTER,
                           "LLMRELAY_REDIS_URL": f"redis://127.0.0.1:{silent.getsockname()[1]}/0"})
        key = create_key(node, rpm=2)["key"]
        started = time.monotonic()
        statuses = [chat(node, key).status_code for _ in range(4)]
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert statuses == [200, 200, 429, 429]  # still counted, by the node alone
    assert 0.4 < elapsed < 1.0, elapsed  # the first request waited for Redis; the others did not
    assert node.wait_for_log("the rate-limit store failed (TimeoutError)")


def counters(where: str, request, clock):
    """The node's own counters, or the Redis ones (on a Redis of the tests' own), on the test's clock."""
    if where == "node":
        return LocalLimits(clock=clock)
    redis_server = request.getfixturevalue("redis_server")
    return RedisLimits(aioredis.from_url(redis_server.url), f"test-{free_port()}:limits", clock=clock)


@pytest.mark.parametrize("where", ["node", "redis"])
def test_the_minute_moves_and_token_windows_reopen(where, request):
    """On a clock the test moves: the moving minute admits again exactly when its oldest request is a minute
    old, and a token window takes requests again once it has ended."""
    now = [time.time()]
    requests, tokens = Budget("key", "r", rpm=2), Budget("key", "t", tpm=100)

    async def scenario():
        limits = counters(where, request, lambda: now[0])

        async def admitted(budget, estimate=10) -> bool:
            try:
                await limits.admit([budget], estimate)
            except RateLimited:
                return False
            return True
        assert await admitted(requests)
        now[0] += 10
        assert await admitted(requests)
        now[0] += 49.9  # the first request is 59.9 s old
        assert not await admitted(requests)
        now[0] += 0.1  # a minute old: one place again, not two
        assert await admitted(requests) and not await admitted(requests)

        assert await admitted(tokens)  # opens a window until now + 60
        await limits.charge([tokens], 95)
        assert not await admitted(tokens)  # 95 + 10 > 100
        assert await admitted(tokens, 5)  # 95 + 5 fits exactly
        now[0] += 59.9
        assert not await admitted(tokens)
        now[0] += 0.1
        assert await admitted(tokens)
        await limits.close()
    asyncio.run(scenario())


@pytest.mark.parametrize("where", ["node", "redis"])
def test_a_request_one_budget_refuses_costs_the_others_nothing(where, request):
    now = [time.time()]
    key, model = Budget("key", "k", rpm=5, tokens_per_day=1000), Budget("model", "m", rpm=1)

    async def scenario():
        limits = counters(where, request, lambda: now[0])
        await limits.admit([key, model], 10)
        for _ in range(3):
            with pytest.raises(RateLimited, match="model m is over its limit of 1 requests per minute") as refused:
                await limits.admit([key, model], 10)
            assert refused.value.headers["Retry-After"] == "60"
        # the key's own rpm counted one request, not four: four more fit
        for _ in range(4):
            await limits.admit([key], 10)
        with pytest.raises(RateLimited, match="key k is over its limit of 5 requests per minute"):
            await limits.admit([key], 10)
        # a charge lands on every budget that counts tokens, and the refusal says what is left
        await limits.charge([key], 990)
        with pytest.raises(RateLimited, match="tokens per day") as refused:
            await limits.admit([Budget("key", "k", tokens_per_day=1000)], 20)
        assert refused.value.headers["X-RateLimit-Remaining-Tokens"] == "10"
        assert int(refused.value.headers["Retry-After"]) > 86000
        await limits.close()
    asyncio.run(scenario())
