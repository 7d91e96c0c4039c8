"""A model's name never changes an upstream URL: Cloudflare puts it in the path (`.../ai/run/<model>`), so the
node validates it, encodes it segment by segment, and key patterns match the same name the URL carries."""

import posixpath
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmrelay.access.keys import ApiKey
from llmrelay.core.errors import BadRequest
from llmrelay.providers.model_path import MAX_MODEL_NAME, model_path
from tests.support.admin import ADMIN, MASTER, QUESTION, create_key
from tests.support.node import Node

CF_TOKEN = "cf-test-token"

# Each name, and what the 400 must say is wrong with it.
UNSAFE_NAMES = [
    ("../../../../user/tokens/verify?x=", "'..' path segment"),
    ("@cf/meta/../../../../user/tokens/verify", "'..' path segment"),
    ("@cf/./meta/llama", "'.' path segment"),
    ("@cf/meta/llama?x=1", "'?'"),
    ("@cf/meta/llama#x", "'#'"),
    ("@cf\\meta\\llama", "backslash"),
    ("@cf//meta/llama", "empty path segment"),
    ("/@cf/meta/llama", "empty path segment"),
    ("@cf/meta/llama/", "empty path segment"),
    ("@cf/meta/llama\r\nX-Injected: 1", "control character"),
    ("@cf/meta/\x00llama", "control character"),
    ("@cf/meta/%2e%2e/%2e%2e/user", "'%'"),
]


@pytest.fixture(scope="module")
def cf_node(cloudflare, ollama, tmp_path_factory):
    """A node with Cloudflare Workers AI behind `/api/v1/chat/cf`, and keys on."""
    env = {"LLM_CF_URL": cloudflare.url + "/ai/run", "LLM_CF_TOKEN": CF_TOKEN, "LLM_CHAT_URL": ollama.url,
           "LLMRELAY_EMBEDDED": "false", "LLMRELAY_MASTER_KEY": MASTER}
    with Node(env, cwd=tmp_path_factory.mktemp("cf-node")) as node:
        yield node


def cf_chat(node, model: str, key: str = MASTER) -> httpx.Response:
    return httpx.post(node.url + "/api/v1/chat/cf", json={"model": model, "messages": QUESTION},
                      headers={"authorization": f"Bearer {key}"}, timeout=10)


def test_cloudflare_model_path_traversal_never_reaches_another_api_path(cf_node, cloudflare):
    response = cf_chat(cf_node, "../../../../user/tokens/verify?x=")
    assert response.status_code == 400, response.text
    assert "'..' path segment" in response.json()["error"]["message"]
    assert cloudflare.requests == [], "nothing, and above all not the operator's token, went to the upstream"


@pytest.mark.parametrize(("model", "problem"), UNSAFE_NAMES)
def test_each_unsafe_model_name_is_refused_with_a_400_that_says_why(cf_node, cloudflare, model, problem):
    response = cf_chat(cf_node, model)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and problem in error["message"], error
    assert cloudflare.requests == []


def test_a_key_for_cf_meta_models_never_reaches_other_paths(cf_node, cloudflare):
    key = create_key(cf_node, models=["@cf/meta/*"])["key"]
    refused = cf_chat(cf_node, "@cf/meta/../../../../user/tokens/verify", key)
    assert refused.status_code == 403, refused.text
    assert "'..' path segment" in refused.json()["error"]["message"]
    assert cf_chat(cf_node, "@cf/meta/x/../../../openai/gpt", key).status_code == 403
    assert cloudflare.requests == []
    allowed = cf_chat(cf_node, "@cf/meta/llama-3.1-8b-instruct", key)
    assert allowed.status_code == 200, allowed.text
    assert cloudflare.last().raw_path == "/ai/run/@cf/meta/llama-3.1-8b-instruct", "'@' and '/' reach it as they are"


def test_model_names_are_percent_encoded_segment_by_segment(cf_node, cloudflare):
    response = cf_chat(cf_node, "@cf/meta/llama 3 ünïcode")
    assert response.status_code == 200, response.text
    assert cloudflare.last().raw_path == "/ai/run/@cf/meta/llama%203%20%C3%BCn%C3%AFcode"
    assert cloudflare.last().path == "/ai/run/@cf/meta/llama 3 ünïcode"


def test_a_configured_cloudflare_model_on_a_translated_surface_uses_the_same_rules(cloudflare, tmp_path):
    (tmp_path / "llmrelay.yaml").write_text(f"""models:
  - name: cf-llama
    deployments:
      - {{provider: cloudflare, base_url: '{cloudflare.url}/ai/run', model: '@cf/meta/llama-3.1-8b-instruct'}}
  - name: cf-broken
    deployments:
      - {{provider: cloudflare, base_url: '{cloudflare.url}/ai/run', model: '@cf/meta/../../x'}}
""")
    with Node({"LLM_CF_TOKEN": CF_TOKEN, "LLMRELAY_EMBEDDED": "false"}, cwd=tmp_path) as node:
        good = httpx.post(node.url + "/v1/chat/completions", json={"model": "cf-llama", "messages": QUESTION})
        assert good.status_code == 200, good.text
        assert cloudflare.last().raw_path == "/ai/run/@cf/meta/llama-3.1-8b-instruct"
        bad = httpx.post(node.url + "/v1/chat/completions", json={"model": "cf-broken", "messages": QUESTION})
    assert bad.status_code == 400 and "'..' path segment" in bad.json()["error"]["message"], bad.text
    assert len(cloudflare.requests) == 1


def test_overlong_model_names_are_refused_before_they_are_kept(cf_node, ollama):
    model = "x" * (MAX_MODEL_NAME + 1)
    for path in ("/api/v1/chat", "/v1/chat/completions", "/api/v1/chat/cf"):
        response = httpx.post(cf_node.url + path, json={"model": model, "messages": QUESTION}, headers=ADMIN)
        assert response.status_code == 400, (path, response.text)
        assert "at most" in response.text
    assert ollama.requests == []


# The helper and the key patterns, called directly.

def test_model_path_keeps_cloudflare_names_as_they_are():
    for name in ("@cf/meta/llama-3.1-8b-instruct", "@hf/thebloke/codellama-7b-instruct-awq", "llama3:8b"):
        assert model_path(name) == name


@pytest.mark.parametrize(("model", "problem"), UNSAFE_NAMES + [("", "empty"), ("..", "'..'"), (".", "'.'")])
def test_model_path_refuses_names_that_would_change_the_url(model, problem):
    with pytest.raises(BadRequest) as refused:
        model_path(model)
    assert problem in refused.value.message


@given(st.text(alphabet=st.sampled_from(list("./\\?#%@:a \x00\r\nü")), max_size=12))
def test_an_accepted_name_never_leaves_the_models_path(model):
    try:
        path = model_path(model)
    except BadRequest:
        return
    base = "/client/v4/accounts/acc/ai/run/"
    parts = urlsplit("https://api.cloudflare.com" + base + path)
    assert not parts.query and not parts.fragment and parts.netloc == "api.cloudflare.com"
    assert parts.path.isascii() and parts.path.isprintable() and " " not in parts.path
    # As a server (or Cloudflare's own URL normalisation) reads it: decoded, backslashes as slashes, dot
    # segments resolved. The name is still exactly where it was put.
    decoded = unquote(parts.path).replace("\\", "/")
    assert posixpath.normpath(decoded) == decoded.rstrip("/") and decoded == base + model


def test_key_patterns_cover_only_names_the_url_carries_as_they_are():
    key = ApiKey("key_1", "k", "", "", ("@cf/meta/*", "exact/../name"), None, None, None, 0.0, None, None)
    assert key.allows("@cf/meta/llama-3.1-8b-instruct")
    for name in ("@cf/meta/../x", "@cf/meta/..", "@cf/meta/x/../../y", "@cf/meta/./x", "@cf/meta/x?y",
                 "@cf/meta/x\\..\\..\\y", "@cf/meta//x", "@cf/meta/%2e%2e/x"):
        assert not key.allows(name), name
    assert key.allows("exact/../name"), "an exact entry still names exactly what the operator wrote"
