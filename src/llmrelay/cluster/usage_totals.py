"""Usage totals for the whole cluster, kept in Redis: per day, by model and by key.

A recorder consumer: on the recorder's thread, each batch of finished requests becomes one pipeline of
HINCRBY on `<cluster>:usage:<day>` (kept 40 days). Any node can then sum the cluster's usage without the
nodes sharing a database. Nodes that do share a PostgreSQL get the same from `/admin/usage`.
"""

import datetime
import logging
import time
from collections import Counter

import redis

from llmrelay.cluster.registry import REDIS_TIMEOUT
from llmrelay.observability.recorder import RequestRecord

log = logging.getLogger("llmrelay")

KEEP_DAYS = 40
_MEASURES = ("requests", "errors", "prompt_tokens", "completion_tokens")


def _day(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d")


class UsageTotals:
    def __init__(self, url: str, cluster: str):
        self.redis = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
        self.prefix = f"{cluster}:usage:"
        self._failing = False

    def __call__(self, records: list[RequestRecord], dropped: int) -> None:
        counts: Counter = Counter()
        for r in records:
            if r.surface is None:
                continue
            day = _day(r.at)
            for group, name in (("model", r.model or ""), ("key", r.key_id or "")):
                base = f"{group}\t{name}\t"
                counts[day, base + "requests"] += 1
                counts[day, base + "errors"] += r.status >= 400
                counts[day, base + "prompt_tokens"] += r.prompt_tokens or 0
                counts[day, base + "completion_tokens"] += r.completion_tokens or 0
        if not counts:
            return
        try:
            pipeline = self.redis.pipeline(transaction=False)
            for (day, field), amount in counts.items():
                if amount:
                    pipeline.hincrby(self.prefix + day, field, amount)
            for day in {day for day, _ in counts}:
                pipeline.expire(self.prefix + day, KEEP_DAYS * 86400)
            pipeline.execute()
            self._failing = False
        except redis.RedisError as exc:
            if not self._failing:
                log.warning("cluster usage totals not counted while Redis is away (%s)", type(exc).__name__)
            self._failing = True

    def summary(self, since: float) -> dict:
        """{"by_model": [...], "by_key": [...]}, summed over the days since `since` (blocking: run in a thread)."""
        days = []
        day = since
        while day <= time.time() + 86400:
            days.append(_day(day))
            day += 86400
        totals: dict[tuple[str, str], Counter] = {}
        pipeline = self.redis.pipeline(transaction=False)
        for name in dict.fromkeys(days):
            pipeline.hgetall(self.prefix + name)
        for fields in pipeline.execute():
            for field, value in fields.items():
                group, name, measure = field.decode().split("\t")
                totals.setdefault((group, name), Counter())[measure] += int(value)
        result = {"by_model": [], "by_key": []}
        for (group, name), measures in sorted(totals.items()):
            result[f"by_{group}"].append({group: name or None, **{m: measures[m] for m in _MEASURES}})
        return result
