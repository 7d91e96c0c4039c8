"""The admin API, for the master key only: API keys, usage, deployments.

A new key is returned once, by the request that creates it; afterwards only its id, name and a hint of a
few characters are ever shown. Database work runs on a thread, never on the event loop.
"""

import asyncio
import time
from urllib.parse import parse_qs

import orjson

from llmrelay.access.keys import KeyStore
from llmrelay.asgi import Exchange
from llmrelay.core.durations import parse_duration
from llmrelay.core.errors import BadRequest
from llmrelay.storage.database import GROUPINGS, Database
from llmrelay.surfaces.decoding import json_object

KEYS_PATH = "/admin/keys"
MAX_RECORDS = 10_000


class AdminSurface:
    def __init__(self, keys: KeyStore, database: Database, max_body_bytes: int, deployments, publish_key=None):
        """`publish_key`: async (ApiKey) -> None, tells the cluster of a key made or revoked here."""
        self.publish_key = publish_key
        self.keys = keys
        self.database = database
        self.max_body_bytes = max_body_bytes
        self.deployments = deployments  # () -> the balancer's report of every deployment

    async def list_keys(self, ex: Exchange) -> None:
        await asyncio.to_thread(self.keys.load)
        now = time.time()
        await ex.respond_json(200, {"data": [key.public(now) for key in self.keys.by_id.values()]})

    async def create_key(self, ex: Exchange) -> None:
        request = json_object(await ex.read_body(self.max_body_bytes))
        unknown = set(request) - {"name", "models", "rpm", "tpm", "tokens_per_day", "expires"}
        if unknown:
            raise BadRequest(f"unknown fields: {', '.join(sorted(unknown))}")
        models = request.get("models")
        if models is not None and (not isinstance(models, list) or not all(isinstance(m, str) and m for m in models)):
            raise BadRequest("models must be a list of model names")
        limits = {name: _positive_int(request, name) for name in ("rpm", "tpm", "tokens_per_day")}
        expires = request.get("expires")
        expires_in = parse_duration(expires, "expires") if expires is not None else None
        name = request.get("name")
        if not isinstance(name, str):
            raise BadRequest("a key needs a name")
        secret, key = await asyncio.to_thread(self.keys.create, name, models, limits["rpm"], limits["tpm"],
                                              limits["tokens_per_day"], expires_in)
        if self.publish_key is not None:
            await self.publish_key(key)
        await ex.respond(201, orjson.dumps({"key": secret, **key.public()}),
                         headers=[(b"cache-control", b"no-store")])

    async def revoke_key(self, ex: Exchange) -> None:
        """DELETE /admin/keys/{key_id}, or POST /admin/keys/{key_id}/revoke."""
        key_id = ex.path[len(KEYS_PATH) + 1:].removesuffix("/revoke")
        key = await asyncio.to_thread(self.keys.revoke, key_id)
        if self.publish_key is not None:
            await self.publish_key(key)
        await ex.respond_json(200, key.public())

    async def usage(self, ex: Exchange) -> None:
        query = _query(ex)
        by = query.get("by", "model")
        if by not in GROUPINGS:
            raise BadRequest(f"by must be one of {', '.join(GROUPINGS)}")
        since = query.get("since", "7d")
        start = time.time() - parse_duration(since, "since")
        rows = await asyncio.to_thread(self.database.usage_summary, by, start)
        await ex.respond_json(200, {"by": by, "since": since, "data": rows})

    async def usage_records(self, ex: Exchange) -> None:
        query = _query(ex)
        start = time.time() - parse_duration(query.get("since", "1d"), "since")
        try:
            limit = min(MAX_RECORDS, max(1, int(query.get("limit", "100"))))
        except ValueError:
            raise BadRequest("limit must be a number") from None
        errors_only = query.get("errors", "").lower() in ("1", "true", "yes")
        rows = await asyncio.to_thread(self.database.usage_records, start, limit, errors_only)
        await ex.respond_json(200, {"data": rows})

    async def deployments_report(self, ex: Exchange) -> None:
        await ex.respond_json(200, {"data": self.deployments()})


def _query(ex: Exchange) -> dict[str, str]:
    parsed = parse_qs(ex.scope.get("query_string", b"").decode("latin-1"))
    return {name: values[-1] for name, values in parsed.items()}


def _positive_int(request: dict, name: str) -> int | None:
    value = request.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise BadRequest(f"{name} must be a positive whole number")
    return value
