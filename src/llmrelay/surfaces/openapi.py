"""`GET /openapi.json`: every endpoint the node serves, with the request fields it reads.

Request schemas name what the node understands and allow the rest (`additionalProperties`), because the
same-API paths pass unknown fields through to the upstream.
"""

_TEXT = {"type": "string"}
_NUMBER = {"type": "number"}
_INTEGER = {"type": "integer"}
_OBJECT = {"type": "object"}
_ERROR = {"description": "An error in the surface's own API shape", "content": {"application/json": {"schema": _OBJECT}}}

_MESSAGES = {"type": "array", "items": {"type": "object", "required": ["role"], "properties": {
    "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
    "content": {"oneOf": [_TEXT, {"type": "array", "items": _OBJECT}, {"type": "null"}]}}}}

_OPENAI_CHAT = {"type": "object", "required": ["model", "messages"], "properties": {
    "model": _TEXT, "messages": _MESSAGES, "stream": {"type": "boolean"},
    "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
    "temperature": _NUMBER, "top_p": _NUMBER, "max_tokens": _INTEGER, "max_completion_tokens": _INTEGER,
    "stop": {"oneOf": [_TEXT, {"type": "array", "items": _TEXT}]}, "seed": _INTEGER, "n": {"const": 1},
    "presence_penalty": _NUMBER, "frequency_penalty": _NUMBER, "tools": {"type": "array", "items": _OBJECT},
    "tool_choice": {"oneOf": [_TEXT, _OBJECT]}, "response_format": _OBJECT,
    "options": {"type": "object", "description": "Ollama options (num_ctx, ...), honoured by Ollama upstreams"}}}

_ANTHROPIC_MESSAGES = {"type": "object", "required": ["model", "messages", "max_tokens"], "properties": {
    "model": _TEXT, "max_tokens": _INTEGER, "system": {"oneOf": [_TEXT, {"type": "array", "items": _OBJECT}]},
    "messages": {"type": "array", "items": {"type": "object", "required": ["role", "content"], "properties": {
        "role": {"type": "string", "enum": ["user", "assistant"]},
        "content": {"oneOf": [_TEXT, {"type": "array", "items": _OBJECT}]}}}},
    "stream": {"type": "boolean"}, "temperature": _NUMBER, "top_p": _NUMBER, "top_k": _INTEGER,
    "stop_sequences": {"type": "array", "items": _TEXT}, "tools": {"type": "array", "items": _OBJECT},
    "tool_choice": _OBJECT}}

_OLLAMA_CHAT = {"type": "object", "required": ["model"], "properties": {
    "model": _TEXT, "messages": _MESSAGES, "stream": {"type": "boolean", "default": True},
    "format": {"oneOf": [{"const": "json"}, _OBJECT]}, "options": _OBJECT, "tools": {"type": "array", "items": _OBJECT},
    "keep_alive": {"oneOf": [_TEXT, _NUMBER]}}}

_OLLAMA_GENERATE = {"type": "object", "required": ["model"], "properties": {
    "model": _TEXT, "prompt": _TEXT, "system": _TEXT, "images": {"type": "array", "items": _TEXT},
    "stream": {"type": "boolean", "default": True}, "format": {"oneOf": [{"const": "json"}, _OBJECT]},
    "options": _OBJECT}}

_SEED_CHAT = {"type": "object", "required": ["model"], "properties": {"model": {
    "type": "string", "description": "gpt-*/o1*/o3*/o4*/chatgpt-* go to OpenAI, claude-* to Anthropic, "
                                     "ollama/NAME and anything else to LLM_CHAT_URL"}},
    "description": "Whatever the target LLM expects; forwarded byte for byte."}

_EMBED = {"type": "object", "required": ["model", "input"], "properties": {
    "model": _TEXT, "input": {"oneOf": [_TEXT, {"type": "array", "items": _TEXT}]}}}


_NEW_KEY = {"type": "object", "required": ["name"], "additionalProperties": False, "properties": {
    "name": _TEXT, "models": {"type": "array", "items": _TEXT}, "rpm": _INTEGER, "tpm": _INTEGER,
    "tokens_per_day": _INTEGER, "expires": {"oneOf": [_TEXT, _NUMBER], "description": "e.g. 30d, 12h"}}}


def _post(summary: str, schema: dict, streams: str | None = None) -> dict:
    content = {"application/json": {"schema": _OBJECT}}
    if streams:
        content[streams] = {"schema": _TEXT}
    return {"post": {"summary": summary,
                     "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
                     "responses": {"200": {"description": "The answer", "content": content},
                                   "4XX": _ERROR, "5XX": _ERROR}}}


def _get(summary: str) -> dict:
    return {"get": {"summary": summary, "responses": {
        "200": {"description": "OK", "content": {"application/json": {"schema": _OBJECT}}}, "4XX": _ERROR,
        "5XX": _ERROR}}}


def openapi_document(version: str) -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "llmrelay", "version": version,
                 "description": "One endpoint for any LLM: the seed's pass-through, and the OpenAI, Anthropic "
                                "and Ollama APIs, translated to whichever upstream serves the model."},
        "paths": {
            "/api/v1/chat": _post("Forward a chat request byte for byte (the Masa node's endpoint)", _SEED_CHAT,
                                  "application/x-ndjson"),
            "/v1/api/chat": _post("Alias of /api/v1/chat", _SEED_CHAT, "application/x-ndjson"),
            "/api/v1/chat/cf": _post("Forward to Cloudflare Workers AI (LLM_CF_URL/<model>)", _SEED_CHAT,
                                     "text/event-stream"),
            "/api/v1/llm/models": _get("The node's models"),
            "/v1/chat/completions": _post("OpenAI chat completions", _OPENAI_CHAT, "text/event-stream"),
            "/v1/models": _get("OpenAI model list"),
            "/v1/embeddings": _post("OpenAI embeddings", _EMBED),
            "/v1/messages": _post("Anthropic messages", _ANTHROPIC_MESSAGES, "text/event-stream"),
            "/v1/messages/count_tokens": _post("Anthropic token count (estimated unless Anthropic serves the model)",
                                               _ANTHROPIC_MESSAGES),
            "/api/chat": _post("Ollama chat", _OLLAMA_CHAT, "application/x-ndjson"),
            "/api/generate": _post("Ollama generate", _OLLAMA_GENERATE, "application/x-ndjson"),
            "/api/tags": _get("Ollama model list"),
            "/api/show": _post("Ollama model details", {"type": "object", "required": ["model"],
                                                        "properties": {"model": _TEXT}}),
            "/api/version": _get("Ollama-compatible version"),
            "/api/embed": _post("Ollama embeddings", _EMBED),
            "/health": _get("The process is alive"),
            "/ready": _get("Each upstream's readiness (503 when none is ready)"),
            "/metrics": _get("Prometheus metrics (master key when keys are on)"),
            "/admin/keys": {**_get("API keys, without the keys themselves (master key)"),
                            **_post("Create an API key, returned this once (master key)", _NEW_KEY)},
            "/admin/keys/{key_id}": {"delete": {
                "summary": "Revoke an API key (master key)",
                "parameters": [{"name": "key_id", "in": "path", "required": True, "schema": _TEXT}],
                "responses": _get("")["get"]["responses"]}},
            "/admin/usage": _get("Usage totals by key, model or day: ?by=model&since=7d (master key)"),
            "/admin/usage/records": _get("Recent usage records: ?since=1d&limit=100&errors=1 (master key)"),
            "/admin/deployments": _get("Every deployment's state and load (master key)"),
        },
        "components": {"securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "An llmrelay key, when keys are on"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}}},
        "security": [{}, {"bearer": []}, {"apiKey": []}],
    }
