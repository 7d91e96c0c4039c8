"""The speed targets the node is built to (issue 9), checked against what one `make bench` measured.

run.py, streams.py and stream_capacity.py each add their numbers to a JSON file when given `--record FILE`
(run.py's `record`); this reads that file and prints (and keeps under bench/results/) one table: each target,
what that run measured, and whether it is met. Nothing fails on a miss: on a shared or slow machine the absolute targets
move with the machine (bench/README.md), while the ratios against nginx and LiteLLM hold.

    python bench/targets.py FILE [--quick]
"""

import argparse
import json
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from run import machine_line, save_result  # noqa: E402

# (what is promised, the measurements it applies to, the bound, whether the bound is a ceiling, unit)
TARGETS = [
    ("added p50 at concurrency 1, one worker", ("c1_added_p50_seed_us", "c1_added_p50_same_api_us"), 150, True,
     "µs"),
    ("throughput at concurrency 32 against nginx's", ("c32_share_of_nginx",), 0.15, False, "%"),
    ("throughput at concurrency 32 against LiteLLM's", ("c32_times_litellm",), 40, False, "×"),
    ("added time to a stream's first chunk", ("first_chunk_added_ndjson_us", "first_chunk_added_sse_us"), 300, True,
     "µs"),
    ("added delay per chunk", ("per_chunk_added_ndjson_us", "per_chunk_added_sse_us"), 50, True, "µs"),
    ("RSS idle", ("rss_idle_mb",), 80, True, "MB"),
    ("RSS holding 1,000 streams", ("rss_1000_streams_mb",), 200, True, "MB"),
    ("translated (OpenAI client, Ollama upstream): CPU per request against the pass-through",
     ("translated_cpu_ratio",), 2, True, "×"),
    # Scaling with cores: the work per request must not grow with workers (then throughput grows with the
    # cores the workers get; on a 2-core machine wrk and the mock take part of them, so req/s alone cannot say).
    ("`--workers N`: CPU per request against one worker's", ("workers_cpu_ratio",), 1.2, True, "×"),
]
LABELS = {"c1_added_p50_seed_us": "seed path", "c1_added_p50_same_api_us": "same API",
          "first_chunk_added_ndjson_us": "NDJSON", "first_chunk_added_sse_us": "SSE",
          "per_chunk_added_ndjson_us": "NDJSON", "per_chunk_added_sse_us": "SSE"}
# Shown beside the targets: what the checks above leave out.
CONTEXT = {"workers_rps_ratio": "`--workers N` throughput against one worker's ({:.2f} ×)",
           "most_streams_held": "the most concurrent streams held without an error ({:,.0f})"}


def show(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value * 100:.0f} %"
    if unit == "×":
        return f"{value:.2f} ×" if value < 10 else f"{value:.0f} ×"
    return f"{value:,.0f} {unit}"


def render(measured: dict) -> str:
    lines = [f"# The speed targets, {date.today().isoformat()}", "", machine_line(), "",
             "| target | bound | measured in this run | met |", "|---|---:|---|---|"]
    met_all = True
    for promise, keys, bound, ceiling, unit in TARGETS:
        values = [(key, measured[key]) for key in keys if key in measured]
        if not values:
            lines.append(f"| {promise} | {'≤' if ceiling else '≥'} {show(bound, unit)} | not measured | - |")
            met_all = False
            continue
        met = all(value <= bound if ceiling else value >= bound for _, value in values)
        met_all = met_all and met and len(values) == len(keys)
        shown = ", ".join(f"{LABELS[key]} {show(value, unit)}" if key in LABELS else show(value, unit)
                          for key, value in values)
        lines.append(f"| {promise} | {'≤' if ceiling else '≥'} {show(bound, unit)} | {shown} "
                     f"| {'yes' if met else '**no**'} |")
    lines.append("")
    lines.append("Every target met in this run." if met_all else "Not every target met (or measured) in this run.")
    context = [text.format(measured[key]) for key, text in CONTEXT.items() if key in measured]
    if context:
        lines.append("Also measured: " + "; ".join(context) + ".")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="the JSON file the bench scripts wrote with --record")
    parser.add_argument("--quick", action="store_true", help="print only, keep nothing")
    options = parser.parse_args()
    table = render(json.loads(Path(options.file).read_text()))
    print(table)
    if not options.quick:
        save_result("targets", table)


if __name__ == "__main__":
    main()
