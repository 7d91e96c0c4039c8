"""The benchmark runs end to end in its quick mode (numbers are not asserted: CI machines are noisy)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_pass_through_bench_runs_and_the_node_makes_no_errors():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout
    for row in ("| 1 |", "| 32 |", "| 256 |", "translated (OpenAI to Ollama)", "--workers"):
        assert row in table, table


def test_streams_bench_runs_against_every_target():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "streams.py"), "--quick"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout
    for api in ("/api/v1/chat, seed pass-through to Ollama (NDJSON)", "/v1/chat/completions, same API"):
        assert api in table, table
    assert "bare Python relay adds to it" in table, table
    assert table.count("| **median** |") == 2, table
    assert "saved to" not in table  # a quick run does not replace the last real results


def test_stream_capacity_bench_runs_and_every_target_holds_its_streams():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "stream_capacity.py"), "--quick"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout
    for target in ("| nginx | 50 |", "| llmrelay | 50 |"):  # the quick steps are 20 and 50 streams
        assert target in table, table
    assert "saved to" not in table
