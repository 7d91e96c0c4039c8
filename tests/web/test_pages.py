"""The chat page and the dashboard, in a real browser against a real node."""

import json
import time

import httpx
import pytest

from tests.support.admin import MASTER, QUESTION, create_key
from tests.support.node import free_port

ANSWER = "The sky is blue because of Rayleigh scattering."


def ask(page, question: str) -> None:
    page.fill("#question", question)
    page.press("#question", "Enter")


def last_answer(page):
    return page.locator("#messages .message.assistant").last


def wait_until_answered(page, timeout: float = 30) -> None:
    page.wait_for_function("() => !document.getElementById('send').disabled", timeout=timeout * 1000)


def stayed_on_the_node(page, node) -> bool:
    return all(url.startswith(node.url) for url in page.requested)


def test_an_answer_from_the_embedded_model_streams_in_and_stops_on_request(page, start_node):
    node = start_node({})  # nothing configured: the embedded model answers
    page.goto(node.url + "/chat")
    page.wait_for_selector("#model option[value=smollm2]", state="attached")
    page.fill("#max-tokens", "120")
    ask(page, "Tell me a story about a dragon.")
    # Record every length the answer had while it streamed.
    lengths = page.evaluate("""async () => {
        const seen = new Set();
        const send = document.getElementById('send');
        while (send.disabled) {  // disabled while the answer streams in
            const answers = document.querySelectorAll('#messages .message.assistant .content');
            if (answers.length) seen.add(answers[answers.length - 1].textContent.length);
            await new Promise(r => setTimeout(r, 5));
        }
        return [...seen];
    }""")
    assert len([n for n in lengths if n > 0]) >= 3, lengths  # it arrived in several steps
    assert len(last_answer(page).locator(".content").inner_text()) > 20

    page.fill("#max-tokens", "1000")
    ask(page, "Tell me a much longer story about two dragons.")
    page.wait_for_function("() => document.querySelectorAll('#messages .message.assistant .content')[1]"
                           ".textContent.length > 5")
    page.click("#stop")
    wait_until_answered(page, 5)
    assert last_answer(page).locator(".stopped").inner_text() == "(stopped)"
    stopped_at = last_answer(page).inner_text()
    time.sleep(0.5)
    assert last_answer(page).inner_text() == stopped_at  # nothing more arrived
    assert stayed_on_the_node(page, node)


def test_models_can_be_switched_and_an_upstream_error_is_shown(page, start_node, ollama, tmp_path):
    (tmp_path / "llmrelay.yaml").write_text(f"""
models:
  - name: broken
    deployments:
      - provider: ollama
        base_url: http://127.0.0.1:{free_port()}
""")
    node = start_node({"LLM_CHAT_URL": ollama.url, "LLMRELAY_RETRIES": "0"}, cwd=tmp_path)
    page.goto(node.url + "/chat")
    page.wait_for_selector("#model option[value='llama3:latest']", state="attached")
    page.select_option("#model", "llama3:latest")
    ask(page, "why is the sky blue?")
    wait_until_answered(page)
    assert last_answer(page).locator(".content").inner_text() == ANSWER
    assert json.loads(ollama.last().body)["model"] == "llama3:latest"

    page.select_option("#model", "smollm2")
    page.fill("#max-tokens", "5")
    ask(page, "hello")
    wait_until_answered(page)
    assert last_answer(page).locator(".role").inner_text() == "smollm2"
    assert last_answer(page).locator(".content").inner_text().strip()

    page.select_option("#model", "broken")
    ask(page, "anyone there?")
    wait_until_answered(page)
    error = page.locator("#messages .message.error").last
    assert "502" in error.inner_text() and "refused" in error.inner_text().lower()
    assert stayed_on_the_node(page, node)


def test_markup_in_an_answer_shows_as_text_and_never_runs(page, start_node, ollama):
    node = start_node({"LLM_CHAT_URL": ollama.url})
    page.goto(node.url + "/chat")
    page.wait_for_selector("#model option[value='llama3:latest']", state="attached")
    page.select_option("#model", "llama3:latest")
    ask(page, "show me some html")
    wait_until_answered(page)
    content = last_answer(page).locator(".content")
    assert "<img src=x onerror=alert(1)>" in content.inner_text()
    assert "<script>alert(2)</script>" in content.inner_text()
    assert page.locator("#messages img").count() == 0
    assert page.locator("#messages script").count() == 0
    assert content.locator("strong").inner_text() == "bold"  # markdown still renders
    page.reload()  # the kept conversation is rendered again, just as safely
    page.wait_for_selector("#messages .message.assistant")
    assert page.locator("#messages img").count() == 0
    assert page.dialogs == []


def test_the_conversation_is_kept_and_cleared_and_a_key_is_asked_for(page, start_node, node_env):
    node = start_node({**node_env, "LLMRELAY_MASTER_KEY": MASTER})
    key = create_key(node)["key"]
    page.goto(node.url + "/chat")
    page.wait_for_selector("#key-field.needed")
    assert "requires an API key" in page.inner_text("#status")
    page.fill("#api-key", key)
    page.dispatch_event("#api-key", "change")
    page.wait_for_selector("#model option[value='llama3:latest']", state="attached")
    page.select_option("#model", "llama3:latest")
    page.fill("#system", "Answer briefly.")
    ask(page, "why is the sky blue?")
    wait_until_answered(page)
    assert last_answer(page).locator(".content").inner_text() == ANSWER
    page.reload()
    page.wait_for_selector("#messages .message.assistant")
    assert page.locator("#messages .message").count() == 2
    page.click("#clear")
    assert page.locator("#messages .message").count() == 0
    page.reload()
    page.wait_for_selector("#model option[value='llama3:latest']", state="attached")  # the key was kept
    assert page.locator("#messages .message").count() == 0


def test_the_dashboard_shows_the_requests_just_made(page, start_node, node_env):
    node = start_node({**node_env, "LLMRELAY_MASTER_KEY": MASTER, "LLMRELAY_RETRIES": "0"})
    key = create_key(node, name="team-a")
    auth = {"authorization": f"Bearer {key['key']}"}
    for _ in range(3):
        assert httpx.post(node.url + "/v1/chat/completions", headers=auth,
                          json={"model": "llama3", "messages": QUESTION}).status_code == 200
    failed = httpx.post(node.url + "/api/chat", headers=auth,
                        json={"model": "llama3-always-500", "messages": QUESTION, "stream": False})
    assert failed.status_code >= 500

    page.goto(node.url + "/dashboard")
    page.wait_for_selector("#key-field.needed")
    page.fill("#admin-key", MASTER)
    page.dispatch_event("#admin-key", "change")
    page.wait_for_function("() => document.getElementById('total').textContent === '4'", timeout=10_000)
    # usage records reach the database in batches: the next refreshes show them
    page.wait_for_function("() => document.getElementById('errors').textContent.includes('llama3')",
                           timeout=10_000)
    by_model = page.inner_text("#by-model")
    assert "llama3" in by_model and "llama3-always-500" in by_model
    by_key = page.inner_text("#by-key")
    assert key["id"] in by_key and "team-a" in by_key
    assert "ollama:" in page.inner_text("#deployments")
    errors = page.inner_text("#errors")
    assert str(failed.status_code) in errors and failed.headers["x-request-id"] in errors
    # the chart has been drawn: the canvas holds more than its blank background
    drawn = page.evaluate("""() => {
        const c = document.getElementById('chart');
        const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let coloured = 0;
        for (let i = 0; i < data.length; i += 4) if (data[i + 3] && (data[i] !== data[i + 1])) coloured++;
        return coloured;
    }""")
    assert drawn > 50
    # it refreshes itself
    assert httpx.post(node.url + "/v1/chat/completions", headers=auth,
                      json={"model": "llama3", "messages": QUESTION}).status_code == 200
    page.wait_for_function("() => document.getElementById('total').textContent === '5'", timeout=10_000)
    assert stayed_on_the_node(page, node)
    assert MASTER not in page.content()


@pytest.mark.parametrize("path", ["/", "/chat", "/dashboard", "/static/chat.js"])
def test_pages_are_served_by_the_node_with_a_strict_policy(node, path):
    response = httpx.get(node.url + path)
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy and "default-src 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    again = httpx.get(node.url + path, headers={"if-none-match": response.headers["etag"]})
    assert again.status_code == 304
    assert httpx.get(node.url + "/static/nothing.js").status_code == 404
