"""Rate limits per key and per model, counted by the `limits` library: in memory, or in Redis when
`LLMRELAY_REDIS_URL` is set, so that every node sharing it counts against the same numbers.

- Requests per minute: a moving window (at most N requests in any 60 seconds), exact at the boundary.
- Tokens per minute and per day: a fixed window that opens with the first request. Before a request, its
  prompt is estimated from the body (4 bytes a token) and refused if it would not fit; afterwards the
  tokens the upstream reported (prompt and completion) are charged.
"""

import time
from dataclasses import dataclass

from limits import RateLimitItemPerDay, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from llmrelay.core.errors import RateLimited

BYTES_PER_TOKEN = 4
REDIS_TIMEOUT = 0.5  # seconds


@dataclass(frozen=True, slots=True)
class Budget:
    """The limits that apply to one subject (a key or a model)."""
    kind: str  # "key" or "model", for identifiers and messages
    name: str
    rpm: int | None = None
    tpm: int | None = None
    tokens_per_day: int | None = None

    @property
    def counts_tokens(self) -> bool:
        return bool(self.tpm or self.tokens_per_day)


def open_storage(redis_url: str | None, cluster: str = "llmrelay") -> Storage:
    if redis_url:
        # redis-py rather than limits' default coredis: one Redis client library for the whole node.
        # Short timeouts: a Redis that stops answering must cost a request milliseconds, not minutes.
        return RedisStorage("async+" + redis_url, implementation="redispy", key_prefix=f"{cluster}:limits",
                            socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
    return MemoryStorage()


class RateLimits:
    def __init__(self, storage: Storage):
        self.storage = storage
        self.requests = MovingWindowRateLimiter(storage)
        self.tokens = FixedWindowRateLimiter(storage)

    async def admit(self, budget: Budget, estimated_tokens: int) -> None:
        """Count one request against `budget`, or raise RateLimited with the headers that say when to retry."""
        if budget.rpm:
            item = RateLimitItemPerMinute(budget.rpm)
            if not await self.requests.hit(item, budget.kind, budget.name):
                reset, remaining = await self.requests.get_window_stats(item, budget.kind, budget.name)
                raise _limited(budget, "requests per minute", budget.rpm, remaining, reset, "requests")
        for item, what in self._token_items(budget):
            if not await self.tokens.test(item, budget.kind, budget.name, cost=max(1, estimated_tokens)):
                reset, remaining = await self.tokens.get_window_stats(item, budget.kind, budget.name)
                if estimated_tokens > item.amount:
                    raise RateLimited(f"this request's prompt (about {estimated_tokens} tokens) is larger than "
                                      f"the {budget.kind} {budget.name}'s limit of {item.amount} {what}; "
                                      "send a shorter one")
                raise _limited(budget, what, item.amount, remaining, reset, "tokens")

    async def charge(self, budget: Budget, tokens: int) -> None:
        """Charge the tokens a finished request used."""
        if tokens > 0:
            for item, _ in self._token_items(budget):
                await self.tokens.hit(item, budget.kind, budget.name, cost=tokens)

    @staticmethod
    def _token_items(budget: Budget):
        if budget.tpm:
            yield RateLimitItemPerMinute(budget.tpm), "tokens per minute"
        if budget.tokens_per_day:
            yield RateLimitItemPerDay(budget.tokens_per_day), "tokens per day"


def _limited(budget: Budget, what: str, limit: int, remaining: int, reset: float, unit: str) -> RateLimited:
    wait = max(1, int(reset - time.time() + 0.999))
    return RateLimited(
        f"the {budget.kind} {budget.name} is over its limit of {limit} {what}; retry in {wait} s",
        headers={"Retry-After": str(wait), f"X-RateLimit-Limit-{unit.title()}": str(limit),
                 f"X-RateLimit-Remaining-{unit.title()}": str(max(0, remaining)),
                 f"X-RateLimit-Reset-{unit.title()}": f"{wait}s"})
