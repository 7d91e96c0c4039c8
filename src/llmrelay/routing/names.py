"""How a model's name points at an upstream when no config file says otherwise."""

from llmrelay.core.errors import NoUpstream

OPENAI_PREFIXES = ("gpt-", "o1", "o3", "o4", "chatgpt-")
ANTHROPIC_PREFIXES = ("claude-",)
OLLAMA_PREFIX = "ollama/"
EMBEDDED_NAMES = ("smollm2", "local")


def no_upstream(model: str) -> NoUpstream:
    hint = "set LLM_CHAT_URL to your Ollama server, for example http://localhost:11434"
    if model.startswith(OPENAI_PREFIXES):
        hint = "set OPENAI_API_KEY for OpenAI models, or " + hint
    elif model.startswith(ANTHROPIC_PREFIXES):
        hint = "set ANTHROPIC_API_KEY for Claude models, or " + hint
    return NoUpstream(f"no upstream is configured for model '{model[:200]}': {hint}")
