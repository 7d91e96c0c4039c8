"""The benchmark runs end to end in its quick mode (numbers are not asserted: CI machines are noisy)."""

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import targets  # noqa: E402


def recorded(path: Path) -> dict:
    """What a bench script added to its --record file: numbers, every one (a difference may be below zero)."""
    measured = json.loads(path.read_text())
    assert all(isinstance(value, (int, float)) and math.isfinite(value) for value in measured.values()), measured
    return measured


def test_pass_through_bench_runs_and_the_node_makes_no_errors(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--record",
                             str(tmp_path / "measured.json")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout
    for row in ("| 1 |", "| 32 |", "| 256 |", "translated (OpenAI to Ollama)", "--workers"):
        assert row in table, table
    assert "The node's RSS idle" in table
    # all but LiteLLM's ratio (a quick run skips LiteLLM)
    assert set(recorded(tmp_path / "measured.json")) == {
        "rss_idle_mb", "c1_added_p50_seed_us", "c1_added_p50_same_api_us", "translated_cpu_ratio",
        "workers_cpu_ratio", "workers_rps_ratio", "c32_share_of_nginx"}


def test_streams_bench_runs_against_every_target(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "streams.py"), "--quick", "--record",
                             str(tmp_path / "measured.json")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout
    for api in ("/api/v1/chat, seed pass-through to Ollama (NDJSON)", "/v1/chat/completions, same API"):
        assert api in table, table
    assert "bare Python relay adds to it" in table, table
    assert table.count("| **median** |") == 2, table
    assert "saved to" not in table  # a quick run does not replace the last real results
    assert set(recorded(tmp_path / "measured.json")) == {
        "first_chunk_added_ndjson_us", "first_chunk_added_sse_us", "per_chunk_added_ndjson_us",
        "per_chunk_added_sse_us"}


def test_stream_capacity_bench_runs_and_every_target_holds_its_streams(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "stream_capacity.py"), "--quick", "--record",
                             str(tmp_path / "measured.json")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout
    for target in ("| nginx | 50 |", "| llmrelay | 50 |"):  # the quick steps are 20 and 50 streams
        assert target in table, table
    assert "saved to" not in table
    # the quick steps stop at 50 streams: the RSS at 1,000 is not measured
    assert recorded(tmp_path / "measured.json") == {"most_streams_held": 50}


def test_targets_table_says_which_target_each_number_meets():
    measured = {"c1_added_p50_seed_us": 120.0, "c1_added_p50_same_api_us": 151.0, "c32_share_of_nginx": 0.26,
                "c32_times_litellm": 81.0, "rss_idle_mb": 58.0, "translated_cpu_ratio": 1.3,
                "workers_cpu_ratio": 0.9, "workers_rps_ratio": 1.6}
    rows = {line.split(" | ")[0].lstrip("| "): line for line in targets.render(measured).splitlines()
            if line.startswith("| ")}
    # one path over its bound is enough to miss
    assert rows["added p50 at concurrency 1, one worker"].endswith("| seed path 120 µs, same API 151 µs | **no** |")
    assert rows["throughput at concurrency 32 against nginx's"].endswith("| ≥ 15 % | 26 % | yes |")
    assert rows["throughput at concurrency 32 against LiteLLM's"].endswith("| 81 × | yes |")
    assert rows["RSS idle"].endswith("| ≤ 80 MB | 58 MB | yes |")
    assert rows["added time to a stream's first chunk"].endswith("| not measured | - |")
    table = targets.render(measured)
    assert "Not every target met (or measured) in this run." in table
    assert "throughput against one worker's (1.60 ×)" in table
    everything = {**measured, "c1_added_p50_same_api_us": 150.0, "first_chunk_added_ndjson_us": 222.0,
                  "first_chunk_added_sse_us": 188.0, "per_chunk_added_ndjson_us": 17.0,
                  "per_chunk_added_sse_us": 14.0, "rss_1000_streams_mb": 72.0}
    assert "Every target met in this run." in targets.render(everything)


def test_clients_bench_runs_every_server_and_client():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "clients.py"), "--quick"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout
    for row in ("| uvicorn (httptools, uvloop), llmrelay's client |",
                "| uvicorn (httptools, uvloop), aiohttp's client |",
                "| uvicorn (httptools, uvloop), httpx's client |",
                "| the node's server protocol, llmrelay's client |",
                "| the node (/api/v1/chat, everything on) |"):
        assert row in table, table
    assert "saved to" not in table
