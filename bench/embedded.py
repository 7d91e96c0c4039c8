"""Benchmark: the embedded model through the node against llama-cpp-python called directly.

Same GGUF, same prompt, same settings (greedy, fixed seed, 128 tokens); time to first token and tokens/s,
median of several runs. The node is asked over /v1/chat/completions with streaming.

    python bench/embedded.py [--runs 5] [--tokens 128]
"""

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

sys.path.insert(0, str(ROOT / "bench"))

from run import free_port, save_result, wait_until_up  # noqa: E402

from llmrelay.providers.local import embedded_model_path  # noqa: E402

MESSAGES = [{"role": "user", "content": "Why is the sky blue? Explain in detail."}]


def direct(tokens: int) -> tuple[float, float]:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    llm = Llama(str(embedded_model_path()), n_ctx=2048, n_threads=min(4, os.cpu_count() or 1), verbose=False)
    formatter = Jinja2ChatFormatter(llm.metadata["tokenizer.chat_template"],
                                    eos_token=llm._model.token_get_text(llm.token_eos()),
                                    bos_token=llm._model.token_get_text(llm.token_bos()))
    prompt = formatter(messages=MESSAGES)
    ids = llm.tokenize(prompt.prompt.encode(), add_bos=False, special=True)

    def run() -> tuple[float, float]:
        started = time.perf_counter()
        first, count = None, 0
        for chunk in llm.create_completion(ids, max_tokens=tokens, temperature=0, seed=1, stream=True, stop=[]):
            if chunk["choices"][0]["text"]:
                first = first or time.perf_counter() - started
                count += 1
        return first, count / (time.perf_counter() - started)
    return run


def through_node(url: str, tokens: int):
    body = json.dumps({"model": "smollm2", "messages": MESSAGES, "max_tokens": tokens, "temperature": 0, "seed": 1,
                       "stream": True}).encode()

    def run() -> tuple[float, float]:
        request = urllib.request.Request(url + "/v1/chat/completions", data=body,
                                         headers={"content-type": "application/json"})
        started = time.perf_counter()
        first, count = None, 0
        with urllib.request.urlopen(request) as response:
            for line in response:
                if line.startswith(b"data: {") and b'"content":"' in line and b'"content":""' not in line:
                    first = first or time.perf_counter() - started
                    count += 1
        return first, count / (time.perf_counter() - started)
    return run


def measure(run, runs: int) -> tuple[float, float]:
    run()  # warm-up
    results = [run() for _ in range(runs)]
    return statistics.median(r[0] for r in results), statistics.median(r[1] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    options = parser.parse_args()
    if embedded_model_path() is None:
        sys.exit("the embedded model is not installed (make install)")

    direct_ttft, direct_rate = measure(direct(options.tokens), options.runs)
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LLMRELAY_", "OPENAI_", "ANTHROPIC_", "LLM_CHAT_URL"))}
    with tempfile.TemporaryDirectory() as work:
        node = subprocess.Popen([sys.executable, "-m", "llmrelay", "serve", "--port", str(port)], env=env, cwd=work,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_up(url + "/health")
            node_ttft, node_rate = measure(through_node(url, options.tokens), options.runs)
        finally:
            node.send_signal(signal.SIGTERM)
            node.wait(10)

    table = "\n".join([
        f"# Embedded model (SmolLM2-135M-Instruct Q4_1), {date.today().isoformat()}",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; {options.tokens} tokens, greedy, median of "
        f"{options.runs} runs after a warm-up.",
        "",
        "| path | time to first token | tokens/s |",
        "|---|---:|---:|",
        f"| llama-cpp-python directly | {direct_ttft * 1000:.1f} ms | {direct_rate:.1f} |",
        f"| through the node (/v1/chat/completions, streaming) | {node_ttft * 1000:.1f} ms | {node_rate:.1f} |",
        f"| node overhead | {(node_ttft - direct_ttft) * 1000:+.1f} ms "
        f"| {(node_rate / direct_rate - 1) * 100:+.1f} % |",
    ]) + "\n"
    print(table)
    save_result("embedded", table)


if __name__ == "__main__":
    main()
