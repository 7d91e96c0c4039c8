"""Backpressure (bounded in-flight requests and queue) and a graceful drain on SIGTERM."""

import signal
import threading
import time

import httpx

USER = [{"role": "user", "content": "hi"}]


def hold_stream(node, model, results, index):
    try:
        with httpx.stream("POST", node.url + "/api/chat", timeout=20,
                          json={"model": model, "messages": USER}) as response:
            body = response.read()
            results[index] = (response.status_code, body)
    except httpx.HTTPError as exc:
        results[index] = ("error", repr(exc))


def test_requests_beyond_capacity_wait_then_get_429_and_beyond_the_queue_503(start_node, ollama):
    node = start_node({"LLM_CHAT_URL": ollama.url, "LLMRELAY_MAX_IN_FLIGHT": "2", "LLMRELAY_QUEUE_SIZE": "1",
                       "LLMRELAY_QUEUE_TIMEOUT": "0.5", "LLMRELAY_EMBEDDED": "false"})
    results = {}
    holders = [threading.Thread(target=hold_stream, args=(node, "hold-last", results, i)) for i in range(2)]
    for holder in holders:
        holder.start()
    deadline = time.monotonic() + 5
    while sum(r.path == "/api/chat" for r in ollama.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    waiting = {}
    waiter = threading.Thread(target=lambda: waiting.update(
        response=httpx.post(node.url + "/v1/chat/completions", json={"model": "llama3", "messages": USER})))
    waiter.start()
    time.sleep(0.1)
    refused = httpx.post(node.url + "/v1/chat/completions", json={"model": "llama3", "messages": USER})
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert "queue is full" in refused.json()["error"]["message"]
    assert refused.json()["error"]["type"] == "overloaded"  # named for what happened, not "no upstream"
    waiter.join(5)
    assert waiting["response"].status_code == 429 and waiting["response"].headers["retry-after"]
    assert httpx.get(node.url + "/health").status_code == 200, "health is never queued"
    ollama.release.set()
    for holder in holders:
        holder.join(10)
    assert [results[i][0] for i in range(2)] == [200, 200]
    assert httpx.post(node.url + "/v1/chat/completions", json={"model": "llama3", "messages": USER}
                      ).status_code == 200, "capacity comes back"


def test_a_queued_request_gets_the_next_free_slot(start_node, ollama):
    node = start_node({"LLM_CHAT_URL": ollama.url, "LLMRELAY_MAX_IN_FLIGHT": "1", "LLMRELAY_QUEUE_TIMEOUT": "5",
                       "LLMRELAY_EMBEDDED": "false"})
    results = {}
    holder = threading.Thread(target=hold_stream, args=(node, "hold-last", results, 0))
    holder.start()
    time.sleep(0.3)
    threading.Timer(0.5, ollama.release.set).start()
    started = time.monotonic()
    response = httpx.post(node.url + "/v1/chat/completions", json={"model": "llama3", "messages": USER}, timeout=10)
    assert response.status_code == 200 and time.monotonic() - started >= 0.4
    holder.join(10)


def test_sigterm_lets_a_stream_finish_then_exits_zero(start_node, ollama):
    node = start_node({"LLM_CHAT_URL": ollama.url, "LLMRELAY_EMBEDDED": "false"})
    results = {}
    holder = threading.Thread(target=hold_stream, args=(node, "hold-last", results, 0))
    holder.start()
    deadline = time.monotonic() + 5
    while not any(r.path == "/api/chat" for r in ollama.requests) and time.monotonic() < deadline:
        time.sleep(0.01)
    node.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    try:
        httpx.get(node.url + "/health", timeout=1)
        accepted = True
    except httpx.HTTPError:
        accepted = False
    assert not accepted, "a draining node takes no new connections"
    assert node.process.poll() is None, "still running while the stream is in flight"
    ollama.release.set()
    holder.join(10)
    status, body = results[0]
    assert status == 200 and body.rstrip().endswith(b'"done": true, "done_reason": "stop", "total_duration": '
                                                    b'4883583458, "load_duration": 1334875, "prompt_eval_count": '
                                                    b'12, "prompt_eval_duration": 342546000, "eval_count": 9, '
                                                    b'"eval_duration": 4535599000}')
    assert node.process.wait(10) == 0
    assert "status=200" in node.logs(), "the access log was flushed on the way out"


def test_a_deployment_at_its_own_limit_queues_then_refuses(start_node, ollama, tmp_path):
    (tmp_path / "llmrelay.yaml").write_text(f"""models:
  - name: one-at-a-time
    deployments:
      - {{provider: ollama, base_url: '{ollama.url}', model: hold-last, max_in_flight: 1}}
""")
    node = start_node({"LLMRELAY_QUEUE_TIMEOUT": "0.5", "LLMRELAY_EMBEDDED": "false"}, cwd=tmp_path)
    results = {}
    holder = threading.Thread(target=hold_stream, args=(node, "one-at-a-time", results, 0))
    holder.start()
    time.sleep(0.3)
    started = time.monotonic()
    refused = httpx.post(node.url + "/v1/chat/completions", json={"model": "one-at-a-time", "messages": USER})
    assert refused.status_code == 429 and time.monotonic() - started >= 0.45
    assert "deployment" in refused.json()["error"]["message"]
    ollama.release.set()
    holder.join(10)
    assert results[0][0] == 200
