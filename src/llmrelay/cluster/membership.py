"""This node's part in a cluster: the registry, forwarding, shared keys and cooldowns, usage totals.

A node joins when it has both `LLMRELAY_REDIS_URL` and `LLMRELAY_CLUSTER_SECRET`; with Redis alone it only
shares rate-limit counters.
"""

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

from redis import RedisError

from llmrelay.access.keys import KeyStore
from llmrelay.asgi import Exchange
from llmrelay.cluster.forward import Forwarder
from llmrelay.cluster.registry import Registry, redis_client
from llmrelay.cluster.shared_state import CooldownOutbox, SharedState
from llmrelay.cluster.usage_totals import UsageTotals
from llmrelay.core.durations import parse_duration
from llmrelay.core.errors import SharedStoreUnavailable
from llmrelay.providers.http_client import UpstreamClient
from llmrelay.routing.balancer import Balancer
from llmrelay.settings import Settings


@dataclass
class Membership:
    registry: Registry
    shared: SharedState
    forwarder: Forwarder
    usage_totals: UsageTotals

    async def usage(self, ex: Exchange) -> dict:
        """Requests, errors and tokens of the whole cluster by model and by key: ?since=7d (whole days)."""
        since = parse_qs(ex.scope.get("query_string", b"").decode("latin-1")).get("since", ["7d"])[-1]
        start = time.time() - parse_duration(since, "since")
        try:
            totals = await asyncio.to_thread(self.usage_totals.summary, start)
        except RedisError as exc:
            raise SharedStoreUnavailable(f"the cluster's usage totals are in Redis, which is unreachable "
                             f"({type(exc).__name__}); try again when it is back") from None
        return {"since": since, **totals}


def join_cluster(settings: Settings, redis_url: str, keys: KeyStore, balancer: Balancer, outbox: CooldownOutbox,
                 deployments, own_models, load, client: UpstreamClient) -> Membership:
    """This node's membership: `deployments` () -> its configured deployments, `own_models` async () -> the
    names it serves itself, `load` () -> its requests in flight."""
    redis = redis_client(redis_url)
    shared = SharedState(redis, settings.cluster_name, keys, balancer, outbox, deployments)
    registry = Registry(redis, settings.cluster_name, settings.node_url or f"http://{settings.host}:{settings.port}",
                        own_models, load, shared)
    return Membership(registry, shared, Forwarder(client, settings.cluster_secret.get_secret_value()),
                      UsageTotals(redis_url, settings.cluster_name))
