"""What the nodes of a cluster share through Redis besides the registry: API keys and cooldowns.

- Keys: a node that makes or revokes a key writes its record (the hash, never the key) to the hash
  `<cluster>:keys` and bumps `<cluster>:keys:version`; every node re-reads the hash when the version moves,
  so a revocation holds everywhere within a poll (a quarter of a second) even without a shared database.
- Cooldowns: a deployment taken out of rotation on one node is written as `<cluster>:cooldown:<id>` with
  the cooldown as its TTL; the other nodes take it out too. Ids are hashes of the deployment's key (its
  upstream and model, as on each node: one model's cooldown never spreads to the upstream's others), so no
  URL (and no credential in one) reaches Redis.
"""

import hashlib
import time

import orjson

from llmrelay.access.keys import ApiKey, KeyStore
from llmrelay.routing.balancer import Balancer


def deployment_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:24]


class CooldownOutbox:
    """Cooldowns begun on this node, until SharedState's next sync writes them to Redis. Handed to the balancer
    when it is built (it reports each one synchronously, on the request's way)."""

    def __init__(self):
        self.pending: list[tuple[str, float]] = []  # (deployment id, wall-clock end)

    def cooldown_began(self, health) -> None:
        self.pending.append((deployment_id(health.deployment.key),
                             time.time() + (health.cooldown_until - time.monotonic())))


class SharedState:
    def __init__(self, redis, cluster: str, keys: KeyStore, balancer: Balancer, outbox: CooldownOutbox,
                 deployments):
        """`deployments`: () -> the deployments this node knows before any request (its configured ones)."""
        self.redis = redis
        self.keys_hash = f"{cluster}:keys"
        self.keys_version = f"{cluster}:keys:version"
        self.cooldown_prefix = f"{cluster}:cooldown:"
        self.keys = keys
        self.balancer = balancer
        self.outbox = outbox
        self.deployments = deployments
        self._version: bytes | None = None

    async def publish_key(self, key: ApiKey) -> None:
        try:
            await self.redis.hset(self.keys_hash, key.id, orjson.dumps(list(key.row())))
            await self.redis.incr(self.keys_version)
        except Exception:  # noqa: BLE001 - this node has it; the others learn it on the next publish
            pass

    async def sync(self) -> None:
        version = await self.redis.get(self.keys_version)
        if version != self._version:
            records = await self.redis.hgetall(self.keys_hash)
            self.keys.share([ApiKey.from_row(orjson.loads(record)) for record in records.values()])
            self._version = version
        pending = self.outbox.pending
        while pending:
            identifier, until = pending.pop()
            milliseconds = int((until - time.time()) * 1000)
            if milliseconds > 0:
                await self.redis.set(self.cooldown_prefix + identifier, str(until), px=milliseconds)
        await self._apply_cooldowns()

    async def _apply_cooldowns(self) -> None:
        names = [name async for name in self.redis.scan_iter(match=self.cooldown_prefix + "*", count=1000)]
        if not names:
            return
        values = await self.redis.mget(names)
        cooling = {name.decode().removeprefix(self.cooldown_prefix): float(value)
                   for name, value in zip(names, values) if value is not None}
        now, monotonic = time.time(), time.monotonic()
        for deployment in self.deployments():
            self.balancer.health_of(deployment)  # a deployment this node has not used yet cools down too
        for health, _ in self.balancer.states():
            until = cooling.get(deployment_id(health.deployment.key))
            if until is not None and until > now:
                health.cooldown_until = max(health.cooldown_until, monotonic + (until - now))
