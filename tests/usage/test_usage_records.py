"""Usage records: one row per model request, in SQLite or PostgreSQL, none lost on SIGTERM; the admin API and
the CLI sum them up."""

import asyncio
import datetime
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from uuid import uuid4

import httpx

from tests.fakes.brain import PROMPT_TOKENS
from tests.support.admin import ADMIN, MASTER, QUESTION, create_key
from tests.support.node import Node
from tests.usage.clients import (
    anthropic_streamed,
    anthropic_whole,
    label,
    openai_failing,
    openai_streamed,
    openai_whole,
    passthrough_streamed,
    passthrough_whole,
)


def sqlite_rows(node: Node) -> list[dict]:
    path = Path(node.env["LLMRELAY_DATA_DIR"]) / "llmrelay.db"
    assert path.is_file(), f"no database at {path}"
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in connection.execute("SELECT * FROM usage ORDER BY at")]
    finally:
        connection.close()


def test_one_row_per_request_matching_what_each_client_saw_in_sqlite(start_node, node_env, ollama,
                                                                    anthropic_upstream, openai_upstream):
    node = start_node({**node_env, "LLMRELAY_MASTER_KEY": MASTER, "LLMRELAY_RETRIES": "0"})
    key = create_key(node, "alice")
    secret = key["key"]
    ollama_label = label("ollama", ollama.url)
    made = [
        ({"surface": "openai", "model": "llama3", "provider": "ollama", "deployment": ollama_label},
         openai_whole(node, secret)),
        ({"surface": "openai", "model": "llama3", "provider": "ollama", "deployment": ollama_label},
         openai_streamed(node, secret)),
        ({"surface": "passthrough", "model": "llama3", "provider": "ollama", "deployment": ollama_label},
         passthrough_whole(node, secret)),
        ({"surface": "passthrough", "model": "llama3", "provider": "ollama", "deployment": ollama_label},
         passthrough_streamed(node, secret)),
        ({"surface": "anthropic", "model": "claude-sonnet-4-5", "provider": "anthropic",
          "deployment": label("anthropic", anthropic_upstream.url)}, anthropic_whole(node, secret)),
        ({"surface": "anthropic", "model": "claude-sonnet-4-5", "provider": "anthropic",
          "deployment": label("anthropic", anthropic_upstream.url)}, anthropic_streamed(node, secret)),
    ]
    failed = openai_failing(node, secret, "llama3-always-500")
    estimated = openai_streamed(node, secret, "gpt-4o", include_usage=False)  # relayed as is: no usage in it
    assert node.stop() == 0, node.logs()

    rows = {row["request_id"]: row for row in sqlite_rows(node)}
    made_ids = [seen["request_id"] for _, seen in made] + [failed["request_id"], estimated["request_id"]]
    assert len(set(made_ids)) == len(made_ids) == 8
    assert sorted(rows) == sorted(made_ids), "exactly one row per request, under the id the client got"
    for expected, seen in made:
        row = rows[seen["request_id"]]
        assert {name: row[name] for name in expected} == expected, row
        assert row["status"] == seen["status"] == 200
        assert row["key_id"] == key["id"]
        assert row["prompt_tokens"] == seen["prompt_tokens"] == PROMPT_TOKENS, row
        assert row["completion_tokens"] == seen["completion_tokens"], row
        assert row["completion_tokens"] > 0
        assert row["tokens_estimated"] == 0 and row["error_type"] is None, row
        assert row["ttft_ms"] is not None and row["total_ms"] is not None, row
        assert 0 < row["ttft_ms"] <= row["total_ms"] < 10_000, row
        assert abs(row["at"] - time.time()) < 60

    row = rows[failed["request_id"]]
    assert (row["surface"], row["model"], row["provider"], row["key_id"]) == (
        "openai", "llama3-always-500", "ollama", key["id"]), row
    assert row["status"] == failed["status"] >= 500, row
    assert row["error_type"] == failed["error_type"] and row["error_type"], row
    assert row["prompt_tokens"] is None and row["completion_tokens"] is None, row
    assert row["total_ms"] is not None and (row["ttft_ms"] is None or row["ttft_ms"] <= row["total_ms"])

    row = rows[estimated["request_id"]]
    assert (row["surface"], row["model"], row["provider"], row["status"]) == ("openai", "gpt-4o", "openai", 200)
    assert estimated["completion_tokens"] is None, "the client saw no usage"
    assert row["tokens_estimated"] == 1, row
    assert row["prompt_tokens"] > 0, row
    # One token per streamed event: within one of the text chunks the client got.
    assert abs(row["completion_tokens"] - estimated["content_chunks"]) <= 1, (row, estimated)


def test_rows_land_in_postgresql_while_the_node_runs(start_node, node_env, postgres_server, ollama,
                                                     anthropic_upstream):
    database = f"usage_{uuid4().hex[:8]}"
    url = postgres_server.create_database(database)
    node = start_node({**node_env, "LLMRELAY_DATABASE_URL": url, "LLMRELAY_MASTER_KEY": MASTER})
    key = create_key(node, "carol")  # kept in PostgreSQL too
    made = {"openai": openai_whole(node, key["key"]), "passthrough": passthrough_streamed(node, key["key"]),
            "anthropic": anthropic_whole(node, key["key"])}

    deadline = time.monotonic() + 5
    rows = []
    while time.monotonic() < deadline:
        rows = postgres_server.query(database, "SELECT request_id, surface, model, provider, status, key_id,"
                                               " prompt_tokens, completion_tokens, tokens_estimated, ttft_ms,"
                                               " total_ms, error_type FROM usage")
        if len(rows) >= len(made):
            break
        time.sleep(0.1)
    assert node.process.poll() is None, "written while the node runs, not only when it stops"
    by_id = {row[0]: row for row in rows}
    assert len(rows) == len(made) and set(by_id) == {seen["request_id"] for seen in made.values()}, rows
    for surface, seen in made.items():
        (_, row_surface, model, provider, status, key_id, prompt, completion, estimated, ttft, total,
         error_type) = by_id[seen["request_id"]]
        assert row_surface == surface
        assert model == ("claude-sonnet-4-5" if surface == "anthropic" else "llama3")
        assert provider == ("anthropic" if surface == "anthropic" else "ollama")
        assert status == 200 and key_id == key["id"] and error_type is None
        assert (prompt, completion) == (seen["prompt_tokens"], seen["completion_tokens"])
        assert estimated is False
        assert ttft is not None and 0 < ttft <= total

    # The admin API reads them back with PostgreSQL's SQL.
    prompt = sum(seen["prompt_tokens"] for seen in made.values())
    completion = sum(seen["completion_tokens"] for seen in made.values())
    for by, group in (("key", key["id"]), ("day", None), ("model", None)):
        response = httpx.get(node.url + "/admin/usage", params={"by": by, "since": "1d"}, headers=ADMIN)
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert sum(entry["requests"] for entry in data) == len(made), data
        assert sum(entry["prompt_tokens"] for entry in data) == prompt, data
        assert sum(entry["completion_tokens"] for entry in data) == completion, data
        assert all(entry["errors"] == 0 and entry["avg_total_ms"] > 0 for entry in data), data
        if group:
            assert [(entry["key"], entry["key_name"]) for entry in data] == [(group, "carol")]
    records = httpx.get(node.url + "/admin/usage/records", headers=ADMIN).json()["data"]
    assert {record["request_id"] for record in records} == set(by_id)
    days = {datetime.datetime.fromtimestamp(record["at"], datetime.UTC).strftime("%Y-%m-%d") for record in records}
    response = httpx.get(node.url + "/admin/usage", params={"by": "day"}, headers=ADMIN)
    assert {entry["day"] for entry in response.json()["data"]} == days, "days in UTC, as with SQLite"

    assert node.stop() == 0
    count = postgres_server.query(database, "SELECT COUNT(*) FROM usage")[0][0]
    assert count == len(made), "stopping the node writes no row twice"


def test_no_row_is_lost_when_sigterm_arrives_under_load(start_node, ollama):
    node = start_node({"LLM_CHAT_URL": ollama.url, "LLMRELAY_EMBEDDED": "false"})
    total = 150
    model = f"llama3-{uuid4().hex[:6]}-slow"  # the fake waits slow_seconds before answering
    in_flight_at_sigterm = []

    async def one(client: httpx.AsyncClient, index: int):
        await asyncio.sleep(index * 0.006)  # a steady stream: some in flight at SIGTERM, some just arriving
        if index % 2:
            path, body = "/api/v1/chat", {"model": model, "messages": QUESTION, "stream": False}
        else:
            path, body = "/v1/chat/completions", {"model": model, "messages": QUESTION}
        try:
            response = await client.post(node.url + path, json=body)
        except httpx.HTTPError:
            return None
        return response.status_code, response.headers.get("x-request-id")

    async def terminate_when_busy():
        deadline = time.monotonic() + 10
        while len(ollama.requests) < total // 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        in_flight_at_sigterm.append(len(ollama.requests))
        node.process.send_signal(signal.SIGTERM)

    async def run():
        limits = httpx.Limits(max_connections=total, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            killer = asyncio.create_task(terminate_when_busy())
            results = await asyncio.gather(*(one(client, index) for index in range(total)))
            await killer
            return results

    results = asyncio.run(run())
    assert node.process.wait(30) == 0, node.logs()
    answered = [result for result in results if result is not None]
    assert in_flight_at_sigterm[0] >= total // 2, "SIGTERM came while requests were in flight"
    assert all(status == 200 for status, _ in answered), answered
    assert len(answered) >= in_flight_at_sigterm[0], "every request in flight at SIGTERM was answered"
    rows = sqlite_rows(node)
    ids = [row["request_id"] for row in rows]
    assert len(rows) == len(answered), (len(rows), len(answered))
    assert set(ids) == {request_id for _, request_id in answered}, "every id a client received has its row"
    assert all(row["status"] == 200 and row["completion_tokens"] for row in rows)


def test_admin_usage_and_the_cli_sum_up_the_requests(start_node, node_env, ollama, anthropic_upstream):
    node = start_node({**node_env, "LLMRELAY_MASTER_KEY": MASTER, "LLMRELAY_RETRIES": "0"})
    alice, bob = create_key(node, "alice"), create_key(node, "bob")
    by_alice = [openai_whole(node, alice["key"]), openai_streamed(node, alice["key"]),
                passthrough_whole(node, alice["key"])]
    by_bob = [anthropic_whole(node, bob["key"]), openai_whole(node, bob["key"])]
    failed = openai_failing(node, bob["key"], "llama3-always-500")
    made = len(by_alice) + len(by_bob) + 1

    deadline = time.monotonic() + 5
    records = []
    while time.monotonic() < deadline:
        response = httpx.get(node.url + "/admin/usage/records", params={"since": "1h", "limit": 100}, headers=ADMIN)
        assert response.status_code == 200, response.text
        records = response.json()["data"]
        if len(records) >= made:
            break
        time.sleep(0.1)
    assert len(records) == made, records
    errors = httpx.get(node.url + "/admin/usage/records", params={"errors": "1"}, headers=ADMIN).json()["data"]
    assert [record["request_id"] for record in errors] == [failed["request_id"]]

    def usage(by: str) -> dict:
        response = httpx.get(node.url + "/admin/usage", params={"by": by, "since": "7d"}, headers=ADMIN)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["by"] == by and body["since"] == "7d"
        return {entry[by]: entry for entry in body["data"]}

    def sums(seen: list[dict]) -> tuple:
        return (sum(s["prompt_tokens"] for s in seen), sum(s["completion_tokens"] for s in seen))

    def counts(entry: dict) -> tuple:
        assert entry["avg_total_ms"] is not None and entry["avg_total_ms"] > 0, entry
        return entry["requests"], entry["errors"], entry["prompt_tokens"], entry["completion_tokens"]

    llama3 = by_alice + [by_bob[1]]
    by_model = usage("model")
    assert set(by_model) == {"llama3", "claude-sonnet-4-5", "llama3-always-500"}, by_model
    assert counts(by_model["llama3"]) == (4, 0, *sums(llama3)) == (4, 0, 4 * PROMPT_TOKENS, sums(llama3)[1])
    assert counts(by_model["claude-sonnet-4-5"]) == (1, 0, *sums(by_bob[:1]))
    assert counts(by_model["llama3-always-500"]) == (1, 1, 0, 0)

    by_key = usage("key")
    assert set(by_key) == {alice["id"], bob["id"]}, by_key
    assert counts(by_key[alice["id"]]) == (3, 0, *sums(by_alice))
    assert counts(by_key[bob["id"]]) == (3, 1, *sums(by_bob))
    assert by_key[alice["id"]]["key_name"] == "alice" and by_key[bob["id"]]["key_name"] == "bob"

    by_day = usage("day")
    days = {datetime.datetime.fromtimestamp(record["at"], datetime.UTC).strftime("%Y-%m-%d") for record in records}
    assert set(by_day) == days, (by_day, days)
    everything = by_alice + by_bob
    assert tuple(map(sum, zip(*(counts(entry) for entry in by_day.values())))) == (made, 1, *sums(everything))

    cli = subprocess.run([sys.executable, "-m", "llmrelay", "usage", "--by", "model", "--url", node.url,
                          "--master-key", MASTER], check=False, capture_output=True, text=True, timeout=30,
                         env={k: v for k, v in os.environ.items() if not k.startswith("LLMRELAY_")})
    assert cli.returncode == 0, cli.stderr
    header, *lines = [line.split("\t") for line in cli.stdout.splitlines()]
    assert header[:5] == ["model", "requests", "errors", "prompt tokens", "completion tokens"], header
    printed = {line[0]: tuple(int(cell) for cell in line[1:5]) for line in lines}
    assert printed == {model: (entry["requests"], entry["errors"], entry["prompt_tokens"],
                               entry["completion_tokens"]) for model, entry in by_model.items()}, cli.stdout


def test_a_failed_request_is_recorded_under_the_deployment_it_tried(start_node, node_env, ollama):
    node = start_node({**node_env, "LLMRELAY_RETRIES": "0"})
    answered = openai_whole(node, "unused")
    failed = openai_failing(node, "unused", "llama3-always-500")
    assert node.stop() == 0
    rows = {row["request_id"]: row for row in sqlite_rows(node)}
    assert rows[answered["request_id"]]["deployment"] == label("ollama", ollama.url)
    assert rows[failed["request_id"]]["deployment"] == label("ollama", ollama.url), (
        "failures and answers of one deployment must group together")


def test_the_usage_writer_gives_way_to_requests(node):
    """Its thread runs only on cores nothing else wants (SCHED_IDLE), so writing a batch does not delay
    answers; every other thread of the node keeps the ordinary policy."""
    def policy(task: Path) -> int | None:
        try:
            return os.sched_getscheduler(int(task.name))
        except ProcessLookupError:  # a thread that ended meanwhile
            return None

    policies = [policy(task) for task in Path(f"/proc/{node.process.pid}/task").iterdir()]
    policies = [value for value in policies if value is not None]
    assert policies.count(os.SCHED_IDLE) == 1, policies  # the writer, and only it
    assert policies.count(os.SCHED_OTHER) == len(policies) - 1, policies


def test_a_stream_the_client_leaves_is_recorded_with_the_tokens_it_was_sent(start_node, node_env, openai_upstream):
    """Closing the connection before a relayed stream's end must not make what was sent free: a client could
    otherwise read every event and leave before the terminator to stay out of its token limits."""
    node = start_node(node_env)
    body = {"model": "gpt-4o-mini-hold-last", "stream": True, "messages": QUESTION}
    events = 0
    with httpx.stream("POST", node.url + "/v1/chat/completions", json=body, timeout=10) as response:
        request_id = response.headers["x-request-id"]
        for line in response.iter_lines():  # the fake holds back its last event ([DONE]) until released
            if line.startswith("data: "):
                events += 1
                if json.loads(line[6:])["choices"][0]["finish_reason"]:
                    break
        time.sleep(0.2)  # a stream that lasts: the node listens for its client leaving (after 50 ms)
    openai_upstream.release.set()
    node.wait_for_log(request_id)
    assert node.stop() == 0
    row = {row["request_id"]: row for row in sqlite_rows(node)}[request_id]
    assert row["error_type"] == "client_closed"
    assert events > 3
    assert row["completion_tokens"] == events - 3  # estimated from the events sent (no usage was reported)
    assert row["tokens_estimated"]


def test_a_translated_stream_the_client_leaves_is_recorded_with_the_pieces_it_was_sent(start_node, node_env, ollama):
    node = start_node(node_env)
    body = {"model": "llama3-hold-last", "stream": True, "messages": QUESTION}  # OpenAI client, Ollama upstream
    pieces = 0
    with httpx.stream("POST", node.url + "/v1/chat/completions", json=body, timeout=10) as response:
        request_id = response.headers["x-request-id"]
        for line in response.iter_lines():  # the fake holds back its last record, the one with the counts
            if line.startswith("data: ") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                pieces += 1
                if pieces == 3:
                    break
        time.sleep(0.2)  # a stream that lasts: the node listens for its client leaving (after 50 ms)
    ollama.release.set()
    node.wait_for_log(request_id)
    assert node.stop() == 0
    row = {row["request_id"]: row for row in sqlite_rows(node)}[request_id]
    assert row["error_type"] == "client_closed"
    assert row["completion_tokens"] >= pieces  # every piece sent by then, maybe more than the client read
    assert row["prompt_tokens"] > 0
    assert row["tokens_estimated"]
