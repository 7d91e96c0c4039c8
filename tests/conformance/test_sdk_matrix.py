"""Every official SDK against every provider through the node, streaming and not.

Rows: the client's API (openai, anthropic, ollama SDKs). Columns: the upstream's API (fake Ollama, OpenAI and
Anthropic servers over real HTTP). Same-API cells pass through; the others translate.
"""

import anthropic
import ollama
import openai
import pytest

from tests.conformance.clients import ASK
from tests.conformance.conftest import PROVIDERS
from tests.fakes.brain import DEFAULT_WORDS, PROMPT_TOKENS

SURFACES = ("openai", "anthropic", "ollama")
STOP = {"openai": "stop", "anthropic": "end_turn", "ollama": "stop"}
TOOL_STOP = {"openai": "tool_calls", "anthropic": "tool_use", "ollama": "stop"}  # Ollama has no tool stop reason
MATRIX = [(surface, provider, stream) for surface in SURFACES for provider in PROVIDERS for stream in (False, True)]
IDS = [f"{surface}-client->{provider}-upstream-{'stream' if stream else 'whole'}"
       for surface, provider, stream in MATRIX]


TEXT_MATRIX = MATRIX + [(surface, "cloudflare", stream) for surface in SURFACES for stream in (False, True)]
TEXT_IDS = [f"{surface}-client->{provider}-upstream-{'stream' if stream else 'whole'}"
            for surface, provider, stream in TEXT_MATRIX]


@pytest.mark.parametrize("surface, provider, stream", TEXT_MATRIX, ids=TEXT_IDS)
def test_plain_text_with_usage(matrix_node, surface, provider, stream):
    result = ASK[surface](matrix_node.url, f"via-{provider}", "text", stream)
    assert result.text == "".join(DEFAULT_WORDS)
    assert result.stop == STOP[surface]
    assert result.first_role == "assistant"
    assert (result.prompt_tokens, result.completion_tokens) == (PROMPT_TOKENS, len(DEFAULT_WORDS))
    if stream:
        assert result.chunks > 3, "the answer arrives in several chunks"


@pytest.mark.parametrize("surface, provider, stream", MATRIX, ids=IDS)
def test_tool_call_with_several_arguments(matrix_node, surface, provider, stream):
    result = ASK[surface](matrix_node.url, f"via-{provider}", "tool_call", stream)
    assert result.calls == [("get_weather", {"city": "Paris", "unit": "celsius", "days": 3})]
    assert result.stop == TOOL_STOP[surface]
    assert all(result.call_ids), "every call has an id"
    assert result.completion_tokens > 0


@pytest.mark.parametrize("surface, provider, stream", MATRIX, ids=IDS)
def test_two_parallel_tool_calls(matrix_node, surface, provider, stream):
    result = ASK[surface](matrix_node.url, f"via-{provider}", "parallel_tools", stream)
    assert result.calls == [("get_weather", {"city": "Paris", "unit": "celsius"}),
                            ("get_weather", {"city": "Tokyo", "unit": "celsius"})]
    assert len(set(result.call_ids)) == len(result.call_ids)
    assert result.stop == TOOL_STOP[surface]


@pytest.mark.parametrize("surface, provider, stream", MATRIX, ids=IDS)
def test_text_and_tool_call_in_one_chunk_keep_both(matrix_node, surface, provider, stream):
    result = ASK[surface](matrix_node.url, f"via-{provider}", "mixed", stream)
    assert result.text == "Let me check."
    assert result.calls == [("get_weather", {"city": "Paris", "unit": "celsius", "days": 3})]


@pytest.mark.parametrize("surface, provider, stream", MATRIX, ids=IDS)
def test_tool_result_turn(matrix_node, surface, provider, stream):
    result = ASK[surface](matrix_node.url, f"via-{provider}", "tool_result", stream)
    assert result.text == "Result received: 22 degrees"
    assert result.stop == STOP[surface]


@pytest.mark.parametrize("surface, provider, stream", MATRIX, ids=IDS)
def test_image(matrix_node, surface, provider, stream):
    result = ASK[surface](matrix_node.url, f"via-{provider}", "image", stream)
    assert result.text == "I see 1 image(s): image/png"


ERRORS = {"openai": openai.NotFoundError, "anthropic": anthropic.NotFoundError, "ollama": ollama.ResponseError}


@pytest.mark.parametrize("surface, provider, stream", TEXT_MATRIX, ids=TEXT_IDS)
def test_upstream_error_in_the_clients_shape(matrix_node, surface, provider, stream):
    with pytest.raises(ERRORS[surface]) as raised:
        ASK[surface](matrix_node.url, f"via-{provider}-missing", "text", stream)
    assert getattr(raised.value, "status_code", None) == 404
