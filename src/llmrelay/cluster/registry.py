"""The node registry: every node of a cluster announces itself in Redis, and learns about the others.

Each node writes `<cluster>:node:<id>` — its address, the models it serves itself, its load — every
HEARTBEAT seconds with a TTL of NODE_TTL, so a node that dies drops out of the registry on its own. Each
node also reads the registry every beat and keeps a copy in memory: requests never wait on Redis. A node
is used only while its last heartbeat is younger than the TTL, whatever the copy says.

The same loop keeps the cluster's shared state in step (cluster/shared_state.py). A node that loses Redis
keeps serving with what it has, says so in /ready and its log, and rejoins when Redis is back.
"""

import asyncio
import logging
import random
import secrets
import time
from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis

from llmrelay import __version__

log = logging.getLogger("llmrelay")

HEARTBEAT = 1.0
NODE_TTL = 3.0
POLL = 0.25  # how often keys and cooldowns made elsewhere are picked up
MODELS_EVERY = 10.0  # how often a node asks its own upstreams which models they serve
REDIS_TIMEOUT = 0.5
MODELS_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class NodeInfo:
    id: str
    url: str
    models: tuple[str, ...]
    in_flight: int
    version: str
    seen: float  # wall-clock time of its last heartbeat

    def alive(self, now: float) -> bool:
        return now - self.seen < NODE_TTL

    def public(self, now: float) -> dict:
        return {"id": self.id, "url": self.url, "models": list(self.models), "in_flight": self.in_flight,
                "version": self.version, "heartbeat_age_s": round(now - self.seen, 2)}


def redis_client(url: str):
    return aioredis.from_url(url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)


class Registry:
    def __init__(self, redis, cluster: str, node_url: str, own_models, load, shared_state):
        """`own_models`: async () -> names this node serves itself; `load`: () -> requests in flight."""
        self.redis = redis
        self.prefix = f"{cluster}:node:"
        self.me = NodeInfo(secrets.token_hex(6), node_url, (), 0, __version__, 0.0)
        self.own_models = own_models
        self.load = load
        self.shared = shared_state
        self.nodes: dict[str, NodeInfo] = {}  # the others, as last read
        self.connected: bool | None = None  # None until the first try
        self._models: tuple[str, ...] = ()
        self._models_at = -MODELS_EVERY

    # ---- the request path: memory only ----

    def node_for(self, model: str) -> NodeInfo | None:
        """A live node that serves `model` itself, when this one does not; the least loaded of them."""
        if model in self._models:
            return None
        now = time.time()
        serving = [node for node in self.nodes.values() if model in node.models and node.alive(now)]
        if not serving:
            return None
        fewest = min(node.in_flight for node in serving)
        return random.choice([node for node in serving if node.in_flight == fewest])

    def models(self) -> list[tuple[str, str]]:
        """(model, "node <id>") for models only other live nodes serve."""
        now = time.time()
        seen = set(self._models)
        listed = []
        for node in self.nodes.values():
            if not node.alive(now):
                continue
            for model in node.models:
                if model not in seen:
                    seen.add(model)
                    listed.append((model, f"node {node.id}"))
        return listed

    def report(self) -> dict:
        now = time.time()
        me = NodeInfo(self.me.id, self.me.url, self._models, self.load(), __version__, now)
        return {"redis": "connected" if self.connected else "unreachable", "node": me.public(now),
                "nodes": [node.public(now) for node in self.nodes.values() if node.alive(now)]}

    # ---- the background loop ----

    async def run_forever(self) -> None:
        next_beat = 0.0
        while True:
            try:
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + HEARTBEAT
                    await self._beat()
                await self.shared.sync()
                self._connected(True, None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis is away: keep serving, say so once
                self._connected(False, exc)
            await asyncio.sleep(POLL)

    async def leave(self) -> None:
        """Drop out of the registry at once on a clean stop, rather than when the TTL runs out."""
        try:
            await self.redis.delete(self.prefix + self.me.id)
        except Exception:  # noqa: BLE001 - the TTL removes it anyway
            pass

    async def _beat(self) -> None:
        if time.monotonic() - self._models_at >= MODELS_EVERY:
            self._models_at = time.monotonic()
            try:  # a slow Ollama must not stop the heartbeat: keep the models known so far
                self._models = tuple(await asyncio.wait_for(self.own_models(), MODELS_TIMEOUT))
            except TimeoutError:
                log.warning("cluster: this node's upstreams did not list their models within %g s", MODELS_TIMEOUT)
        me = {"id": self.me.id, "url": self.me.url, "models": self._models, "in_flight": self.load(),
              "version": __version__, "seen": time.time()}
        await self.redis.set(self.prefix + self.me.id, orjson.dumps(me), px=int(NODE_TTL * 1000))
        names = [name async for name in self.redis.scan_iter(match=self.prefix + "*", count=1000)]
        values = await self.redis.mget(names) if names else []
        nodes = {}
        for value in values:
            if value is None:
                continue
            record = orjson.loads(value)
            if record["id"] != self.me.id:
                nodes[record["id"]] = NodeInfo(record["id"], record["url"], tuple(record["models"]),
                                               record["in_flight"], record["version"], record["seen"])
        self.nodes = nodes

    def _connected(self, connected: bool, exc: Exception | None) -> None:
        if connected and not self.connected:
            log.info("cluster: node %s joined through Redis (%d other nodes)", self.me.id, len(self.nodes))
        elif not connected and self.connected is not False:
            log.warning("cluster: Redis is unreachable (%s); serving with this node's own state until it is "
                        "back", type(exc).__name__)
        self.connected = connected
