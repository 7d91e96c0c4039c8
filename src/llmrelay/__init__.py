"""llmrelay: a self-hosted LLM chat proxy."""

__version__ = "0.1.0"
