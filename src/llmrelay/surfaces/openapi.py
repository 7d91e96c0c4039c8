"""`GET /openapi.json`: every endpoint the node serves (read from the endpoint table), with the request fields
it reads.

Request schemas name what the node understands and allow the rest (`additionalProperties`), because the
same-API paths pass unknown fields through to the upstream.
"""

from llmrelay.endpoints import Endpoint

_TEXT = {"type": "string"}
_NUMBER = {"type": "number"}
_INTEGER = {"type": "integer"}
_OBJECT = {"type": "object"}
_ERROR = {"description": "An error in the surface's own API shape",
          "content": {"application/json": {"schema": _OBJECT}}}

_MESSAGES = {"type": "array", "items": {"type": "object", "required": ["role"], "properties": {
    "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
    "content": {"oneOf": [_TEXT, {"type": "array", "items": _OBJECT}, {"type": "null"}]}}}}

OPENAI_CHAT = {"type": "object", "required": ["model", "messages"], "properties": {
    "model": _TEXT, "messages": _MESSAGES, "stream": {"type": "boolean"},
    "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
    "temperature": _NUMBER, "top_p": _NUMBER, "max_tokens": _INTEGER, "max_completion_tokens": _INTEGER,
    "stop": {"oneOf": [_TEXT, {"type": "array", "items": _TEXT}]}, "seed": _INTEGER, "n": {"const": 1},
    "presence_penalty": _NUMBER, "frequency_penalty": _NUMBER, "tools": {"type": "array", "items": _OBJECT},
    "tool_choice": {"oneOf": [_TEXT, _OBJECT]}, "response_format": _OBJECT,
    "options": {"type": "object", "description": "Ollama options (num_ctx, ...), honoured by Ollama upstreams"}}}

ANTHROPIC_MESSAGES = {"type": "object", "required": ["model", "messages", "max_tokens"], "properties": {
    "model": _TEXT, "max_tokens": _INTEGER, "system": {"oneOf": [_TEXT, {"type": "array", "items": _OBJECT}]},
    "messages": {"type": "array", "items": {"type": "object", "required": ["role", "content"], "properties": {
        "role": {"type": "string", "enum": ["user", "assistant"]},
        "content": {"oneOf": [_TEXT, {"type": "array", "items": _OBJECT}]}}}},
    "stream": {"type": "boolean"}, "temperature": _NUMBER, "top_p": _NUMBER, "top_k": _INTEGER,
    "stop_sequences": {"type": "array", "items": _TEXT}, "tools": {"type": "array", "items": _OBJECT},
    "tool_choice": _OBJECT}}

OLLAMA_CHAT = {"type": "object", "required": ["model"], "properties": {
    "model": _TEXT, "messages": _MESSAGES, "stream": {"type": "boolean", "default": True},
    "format": {"oneOf": [{"const": "json"}, _OBJECT]}, "options": _OBJECT, "tools": {"type": "array", "items": _OBJECT},
    "keep_alive": {"oneOf": [_TEXT, _NUMBER]}}}

OLLAMA_GENERATE = {"type": "object", "required": ["model"], "properties": {
    "model": _TEXT, "prompt": _TEXT, "system": _TEXT, "images": {"type": "array", "items": _TEXT},
    "stream": {"type": "boolean", "default": True}, "format": {"oneOf": [{"const": "json"}, _OBJECT]},
    "options": _OBJECT}}

SEED_CHAT = {"type": "object", "required": ["model"], "properties": {"model": {
    "type": "string", "description": "gpt-*/o1*/o3*/o4*/chatgpt-* go to OpenAI, claude-* to Anthropic, "
                                     "ollama/NAME and anything else to LLM_CHAT_URL"}},
    "description": "Whatever the target LLM expects; forwarded byte for byte."}

EMBED = {"type": "object", "required": ["model", "input"], "properties": {
    "model": _TEXT, "input": {"oneOf": [_TEXT, {"type": "array", "items": _TEXT}]}}}

MODEL_ONLY = {"type": "object", "required": ["model"], "properties": {"model": _TEXT}}


NEW_KEY = {"type": "object", "required": ["name"], "additionalProperties": False, "properties": {
    "name": _TEXT, "models": {"type": "array", "items": _TEXT}, "rpm": _INTEGER, "tpm": _INTEGER,
    "tokens_per_day": _INTEGER, "expires": {"oneOf": [_TEXT, _NUMBER], "description": "e.g. 30d, 12h"}}}


def _operation(endpoint: Endpoint) -> dict:
    content = {endpoint.answers: {"schema": _TEXT if endpoint.answers.startswith("text/") else _OBJECT}}
    if endpoint.streams:
        content[endpoint.streams] = {"schema": _TEXT}
    operation: dict = {"summary": endpoint.summary,
                       "responses": {"200": {"description": "OK", "content": content}, "4XX": _ERROR, "5XX": _ERROR}}
    if endpoint.body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": endpoint.body}}}
    if endpoint.parameter is not None:
        name = endpoint.parameter[1]
        operation["parameters"] = [{"name": name, "in": "path", "required": True, "schema": _TEXT}]
    return operation


def openapi_document(version: str, endpoints: list[Endpoint]) -> dict:
    paths: dict[str, dict] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {"title": "llmrelay", "version": version,
                 "description": "One endpoint for any LLM: the seed's pass-through, and the OpenAI, Anthropic "
                                "and Ollama APIs, translated to whichever upstream serves the model."},
        "paths": paths,
        "components": {"securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "An llmrelay key, when keys are on"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}}},
        "security": [{}, {"bearer": []}, {"apiKey": []}],
    }
