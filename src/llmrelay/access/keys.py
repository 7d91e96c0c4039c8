"""API keys: created once, shown once, stored only as a hash.

Keys are 256 random bits, so a plain SHA-256 is the right hash (a slow password hash protects guessable
secrets; these are not guessable) and costs a microsecond per request. The store keeps every key in memory,
looked up by hash, and re-reads the table when another worker or node changed it.
"""

import asyncio
import dataclasses
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass

import orjson

from llmrelay.core.errors import BadRequest, Forbidden, NotFound, Unauthenticated
from llmrelay.providers.model_path import model_name_problem
from llmrelay.storage.database import Database

log = logging.getLogger("llmrelay")

KEY_PREFIX = "llr-"
REFRESH_SECONDS = 1.0  # how soon a key made or revoked elsewhere takes effect here


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    hash: str
    hint: str  # enough of the key for a person to tell keys apart, never enough to use one
    models: tuple[str, ...] | None  # None: every model
    rpm: int | None
    tpm: int | None
    tokens_per_day: int | None
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    changed_at: float = 0.0  # the newest record of a key wins when nodes share keys through Redis

    def allows(self, model: str) -> bool:
        if self.models is None:
            return True
        # A pattern covers only names an upstream URL can carry as they are: `@cf/meta/../x` starts with
        # `@cf/meta/` but would reach another path, so no pattern covers it (an exact entry still names it).
        return any(model == allowed or (allowed.endswith("*") and model.startswith(allowed[:-1])
                                        and model_name_problem(model) is None)
                   for allowed in self.models)

    def row(self) -> tuple:
        models = orjson.dumps(list(self.models)).decode() if self.models is not None else None
        return (self.id, self.name, self.hash, self.hint, models, self.rpm, self.tpm, self.tokens_per_day,
                self.created_at, self.expires_at, self.revoked_at, self.changed_at)

    @classmethod
    def from_row(cls, row) -> "ApiKey":
        key_id, name, key_hash, hint, models, rpm, tpm, per_day, created, expires, revoked, changed = row
        return cls(key_id, name, key_hash, hint, tuple(orjson.loads(models)) if models else None, rpm, tpm,
                   per_day, created, expires, revoked, changed)

    def public(self, now: float | None = None) -> dict:
        """What the admin API shows: everything but the hash."""
        now = time.time() if now is None else now
        state = ("revoked" if self.revoked_at else
                 "expired" if self.expires_at is not None and self.expires_at <= now else "active")
        return {"id": self.id, "name": self.name, "hint": self.hint, "models": list(self.models or []) or None,
                "rpm": self.rpm, "tpm": self.tpm, "tokens_per_day": self.tokens_per_day,
                "created_at": self.created_at, "expires_at": self.expires_at, "revoked_at": self.revoked_at,
                "state": state}


# The master key acts as a key allowed everything, with no limits of its own.
MASTER = ApiKey("master", "master key", "", "", None, None, None, None, 0.0, None, None)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    def __init__(self, database: Database, master_key: str | None):
        self.database = database
        self._master_hash = key_hash(master_key) if master_key else None
        self.by_hash: dict[str, ApiKey] = {}
        self.by_id: dict[str, ApiKey] = {}
        self._version: tuple | None = None
        self._stored: dict[str, ApiKey] = {}  # from this node's database
        self._shared: dict[str, ApiKey] = {}  # from the cluster (cluster/shared_state.py)

    @property
    def required(self) -> bool:
        """Keys are required once a master key is set or any key exists."""
        return self._master_hash is not None or bool(self.by_id)

    @property
    def admin_enabled(self) -> bool:
        return self._master_hash is not None

    def authenticate(self, presented: str | None) -> ApiKey:
        if not presented:
            raise Unauthenticated("this node requires an API key: send it as `Authorization: Bearer <key>` "
                                  "or `x-api-key: <key>`")
        digest = key_hash(presented)
        if self._master_hash is not None and hmac.compare_digest(digest, self._master_hash):
            return MASTER
        key = self.by_hash.get(digest)
        if key is None or not hmac.compare_digest(key.hash, digest):
            raise Unauthenticated("the API key is not valid; ask the node's operator for one")
        if key.revoked_at is not None:
            raise Unauthenticated(f"the API key {key.id} has been revoked; ask the node's operator for a new one")
        if key.expires_at is not None and key.expires_at <= time.time():
            raise Unauthenticated(f"the API key {key.id} has expired; ask the node's operator for a new one")
        return key

    def is_master(self, presented: str | None) -> bool:
        if not presented or self._master_hash is None:
            return False
        return hmac.compare_digest(key_hash(presented), self._master_hash)

    @staticmethod
    def check_model(key: ApiKey, model: str) -> None:
        if not key.allows(model):
            problem = model_name_problem(model)
            why = f" ({problem}, so no pattern covers it)" if problem else ""
            raise Forbidden(f"the API key {key.id} may not use the model {model[:200]!r}{why}; it may use: "
                            f"{', '.join(key.models or ())}")

    # ---- reading and changing the table (blocking: call through asyncio.to_thread) ----

    def load(self) -> None:
        version = self.database.keys_version()
        if version == self._version:
            return
        self._stored = {row[0]: ApiKey.from_row(row) for row in self.database.keys()}
        self._version = version
        self._merge()

    def share(self, keys: list[ApiKey]) -> None:
        """Keys as the cluster knows them; a key's newest record wins over this node's own."""
        self._shared = {key.id: key for key in keys}
        self._merge()

    def _merge(self) -> None:
        merged = dict(self._stored)
        for key in self._shared.values():
            if key.id not in merged or key.changed_at > merged[key.id].changed_at:
                merged[key.id] = key
        self.by_id = merged
        self.by_hash = {key.hash: key for key in merged.values()}

    def create(self, name: str, models: list[str] | None, rpm: int | None, tpm: int | None,
               tokens_per_day: int | None, expires_in: float | None) -> tuple[str, ApiKey]:
        """A new key: the key itself (shown once, never stored) and its record."""
        if not name or len(name) > 200:
            raise BadRequest("a key needs a name of 1 to 200 characters")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        key = ApiKey(id="key_" + secrets.token_hex(6), name=name, hash=key_hash(secret),
                     hint=f"{secret[:len(KEY_PREFIX) + 2]}...{secret[-4:]}", models=tuple(models) if models else None,
                     rpm=rpm, tpm=tpm, tokens_per_day=tokens_per_day, created_at=now,
                     expires_at=now + expires_in if expires_in else None, revoked_at=None, changed_at=now)
        self.database.insert_key(key.row())
        self.load()
        return secret, key

    def revoke(self, key_id: str) -> ApiKey:
        now = time.time()
        if not self.database.revoke_key(key_id, now):
            shared = self._shared.get(key_id)  # made on another node of the cluster: keep its revocation here
            if shared is None:
                raise NotFound(f"there is no API key {key_id!r}; `llmrelay keys list` shows the keys")
            self.database.insert_key(dataclasses.replace(shared, revoked_at=now, changed_at=now).row())
        self.load()
        return self.by_id[key_id]

    async def refresh_forever(self) -> None:
        """Pick up keys made or revoked by other workers and nodes sharing the database."""
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await asyncio.to_thread(self.load)
            except Exception as exc:  # noqa: BLE001 - keep the keys we have; say why once per failure
                log.warning("could not re-read the API keys from %s: %s", self.database.display,
                            type(exc).__name__)
