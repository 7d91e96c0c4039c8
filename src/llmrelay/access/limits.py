"""Rate limits per key and per model: in Redis when `LLMRELAY_REDIS_URL` is set, so that every node sharing
it counts against the same numbers (the `limits` library and its Redis scripts), else in this process.

- Requests per minute: a moving window (at most N requests in any 60 seconds), exact at the boundary.
- Tokens per minute and per day: a fixed window that opens with the first request. Before a request, its
  prompt is estimated from the body (4 bytes a token) and refused if it would not fit; afterwards the
  tokens the upstream reported (prompt and completion) are charged.
"""

import time
from collections import deque
from dataclasses import dataclass

from limits import RateLimitItemPerDay, RateLimitItemPerMinute
from limits.aio.storage import RedisStorage, Storage
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


def open_limits(redis_url: str | None, cluster: str = "llmrelay") -> "RateLimits | LocalLimits":
    if redis_url:
        # redis-py rather than limits' default coredis: one Redis client library for the whole node.
        # Short timeouts: a Redis that stops answering must cost a request milliseconds, not minutes.
        return RateLimits(RedisStorage("async+" + redis_url, implementation="redispy", key_prefix=f"{cluster}:limits",
                                       socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT))
    return LocalLimits()


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
                    raise _too_large(budget, estimated_tokens, item.amount, what)
                raise _limited(budget, what, item.amount, remaining, reset, "tokens")

    async def charge(self, budget: Budget, tokens: int) -> None:
        """Charge the tokens a finished request used."""
        if tokens > 0:
            for item, _ in self._token_items(budget):
                await self.tokens.hit(item, budget.kind, budget.name, cost=tokens)

    @staticmethod
    def _token_items(budget: Budget):
        for limit, period, what in _token_limits(budget):
            yield (RateLimitItemPerMinute if period == MINUTE else RateLimitItemPerDay)(limit), what


MINUTE = 60.0
DAY = 86400.0


class LocalLimits:
    """The same limits, counted in this process: the times of a subject's requests in the last minute (at most
    rpm of them), and per token limit a window with its end and the tokens used.

    Written here rather than taken from `limits`' in-memory storage, which on every hit starts a task that
    hands each subject's list of request times to a thread pool and copies it. A key's rpm and tpm limits cost
    179 µs a request with it and 27 µs with this, over a key without limits (bench/access_cost.py, one run each).
    """

    def __init__(self, clock=time.time):
        self.clock = clock
        self._requests: dict[tuple[str, str], deque[float]] = {}  # (kind, name) -> its requests' times
        self._tokens: dict[tuple[str, str, float], list] = {}  # (kind, name, period) -> [window end, tokens used]

    async def admit(self, budget: Budget, estimated_tokens: int) -> None:
        now = self.clock()
        if budget.rpm:
            times = self._requests.get((budget.kind, budget.name))
            if times is None:
                times = self._requests[budget.kind, budget.name] = deque()
            while times and times[0] <= now - MINUTE:
                times.popleft()
            if len(times) >= budget.rpm:  # room again once the rpm-th latest request is a minute old
                raise _limited(budget, "requests per minute", budget.rpm, 0, times[-budget.rpm] + MINUTE, "requests")
            times.append(now)
        for limit, period, what in _token_limits(budget):
            end, used = self._window(budget, period, now)
            if used + max(1, estimated_tokens) > limit:
                if estimated_tokens > limit:
                    raise _too_large(budget, estimated_tokens, limit, what)
                raise _limited(budget, what, limit, limit - used, end, "tokens")

    async def charge(self, budget: Budget, tokens: int) -> None:
        if tokens > 0:
            now = self.clock()
            for _, period, _ in _token_limits(budget):
                self._window(budget, period, now)[1] += tokens

    def _window(self, budget: Budget, period: float, now: float) -> list:
        """The subject's current window for `period`: a new one opens with the first request after the last
        one ended."""
        window = self._tokens.get((budget.kind, budget.name, period))
        if window is None or window[0] <= now:
            window = self._tokens[budget.kind, budget.name, period] = [now + period, 0]
        return window


def _token_limits(budget: Budget):
    if budget.tpm:
        yield budget.tpm, MINUTE, "tokens per minute"
    if budget.tokens_per_day:
        yield budget.tokens_per_day, DAY, "tokens per day"


def _too_large(budget: Budget, estimated_tokens: int, limit: int, what: str) -> RateLimited:
    return RateLimited(f"this request's prompt (about {estimated_tokens} tokens) is larger than the {budget.kind} "
                       f"{budget.name}'s limit of {limit} {what}; send a shorter one")


def _limited(budget: Budget, what: str, limit: int, remaining: int, reset: float, unit: str) -> RateLimited:
    wait = max(1, int(reset - time.time() + 0.999))
    return RateLimited(
        f"the {budget.kind} {budget.name} is over its limit of {limit} {what}; retry in {wait} s",
        headers={"Retry-After": str(wait), f"X-RateLimit-Limit-{unit.title()}": str(limit),
                 f"X-RateLimit-Remaining-{unit.title()}": str(max(0, remaining)),
                 f"X-RateLimit-Reset-{unit.title()}": f"{wait}s"})
