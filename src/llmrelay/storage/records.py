"""The columns of the node's two tables, shared by the database and the code that fills them."""

# One row per request: see usage/records.py for how a request becomes a row.
USAGE_COLUMNS = ("at", "request_id", "key_id", "surface", "model", "provider", "deployment", "status",
                 "prompt_tokens", "completion_tokens", "tokens_estimated", "ttft_ms", "total_ms", "error_type")

# One row per API key: only the key's hash is kept (see access/keys.py).
KEY_COLUMNS = ("id", "name", "hash", "hint", "models", "rpm", "tpm", "tokens_per_day", "created_at",
               "expires_at", "revoked_at", "changed_at")
