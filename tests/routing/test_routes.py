"""Routes for models the config file does not name: chosen by the name's vendor prefix, built once per name,
and never kept without bound (the names come from clients)."""

import pytest

from llmrelay.core.errors import NoUpstream
from llmrelay.routing.models import ROUTES_KEPT, ModelCatalog
from llmrelay.routing.passthrough import PassthroughRoutes
from llmrelay.settings import load_settings


@pytest.fixture
def catalog(clean_env, monkeypatch):
    monkeypatch.setenv("LLM_CHAT_URL", "http://127.0.0.1:11434")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("LLMRELAY_EMBEDDED", "false")
    return ModelCatalog(load_settings())


def test_a_models_route_follows_its_prefix_and_is_built_once(catalog):
    gpt = catalog.route("gpt-4o-mini")
    assert [(d.provider, d.model) for d in gpt.deployments] == [("openai", "gpt-4o-mini")]
    assert catalog.route("gpt-4o-mini") is gpt
    llama = catalog.route("ollama/llama3")
    assert [(d.provider, d.model) for d in llama.deployments] == [("ollama", "llama3")]
    assert llama.name == "ollama/llama3"


def test_routes_of_client_chosen_names_are_bounded(catalog):
    first = catalog.route("model-0")
    for number in range(1, ROUTES_KEPT + 10):
        assert catalog.route(f"model-{number}").name == f"model-{number}"
    assert len(catalog._environment_routes) <= ROUTES_KEPT
    assert catalog.route("model-0") is not first  # forgotten, built again, still right
    assert catalog.route("model-0").name == "model-0"


def test_pass_through_routes_are_reused_and_strip_only_the_ollama_prefix(catalog):
    routes = PassthroughRoutes(catalog)
    route, strip = routes.route("ollama/gpt-oss")
    assert strip and route.deployments[0].upstream is catalog.ollama
    assert routes.route("ollama/gpt-oss")[0] is route
    route, strip = routes.route("gpt-4o-mini")
    assert not strip and route.deployments[0].upstream is catalog.openai
    assert route.name == "gpt-4o-mini"


def test_a_model_without_an_upstream_is_refused_every_time(monkeypatch, catalog):
    no_ollama = ModelCatalog(load_settings().model_copy(update={"llm_chat_url": None}))
    for _ in range(2):  # a refusal is not remembered as a route
        with pytest.raises(NoUpstream):
            no_ollama.route("llama3")
        with pytest.raises(NoUpstream):
            PassthroughRoutes(no_ollama).route("llama3")
