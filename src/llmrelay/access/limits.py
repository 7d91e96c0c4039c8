"""Rate limits per key and per model: in Redis when `LLMRELAY_REDIS_URL` is set, so that every node sharing
it counts against the same numbers, else in this process.

- Requests per minute: a moving window (at most N requests in any 60 seconds), exact at the boundary.
- Tokens per minute and per day: a fixed window that opens with the first request. Before a request, its
  prompt is estimated from the body (4 bytes a token) and refused if it would not fit; afterwards the
  tokens the upstream reported (prompt and completion) are charged.

A request is checked against all its budgets (its key's and its model's) before any of them counts it, so
a request one budget refuses costs the others nothing.
"""

import time
from collections import deque
from dataclasses import dataclass

import redis.asyncio as aioredis

from llmrelay.access.script_batch import ScriptBatch
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


def open_limits(redis_url: str | None, cluster: str = "llmrelay") -> "RedisLimits | LocalLimits":
    if redis_url:
        # Short timeouts: a Redis that stops answering must cost a request milliseconds, not minutes.
        return RedisLimits(aioredis.from_url(redis_url, socket_timeout=REDIS_TIMEOUT,
                                             socket_connect_timeout=REDIS_TIMEOUT), f"{cluster}:limits")
    return LocalLimits()


MINUTE = 60.0
DAY = 86400.0


class LocalLimits:
    """The limits counted in this process: the times of a subject's requests in the last minute (at most rpm
    of them), and per token limit a window with its end and the tokens used.

    Written here rather than taken from the `limits` library's in-memory storage, which on every hit starts a
    task that hands each subject's list of request times to a thread pool and copies it (bench/access_cost.py).
    """

    def __init__(self, clock=time.time):
        self.clock = clock
        self._requests: dict[tuple[str, str], deque[float]] = {}  # (kind, name) -> its requests' times
        self._tokens: dict[tuple[str, str, float], list] = {}  # (kind, name, period) -> [window end, tokens used]

    async def admit(self, budgets: list[Budget], estimated_tokens: int) -> None:
        """Count one request against every budget, or raise RateLimited, with the headers that say when to
        retry, and count it against none."""
        now = self.clock()
        cost = max(1, estimated_tokens)
        for budget in budgets:
            if budget.rpm:
                times = self._requests.get((budget.kind, budget.name))
                if times is None:
                    times = self._requests[budget.kind, budget.name] = deque()
                while times and times[0] <= now - MINUTE:
                    times.popleft()
                if len(times) >= budget.rpm:  # room again once the rpm-th latest request is a minute old
                    raise _limited(budget, "requests per minute", budget.rpm, 0, times[-budget.rpm] + MINUTE,
                                   "requests")
            for limit, period, what in _token_limits(budget):
                end, used = self._window(budget, period, now)
                if used + cost > limit:
                    raise _refused(budget, estimated_tokens, limit, what, limit - used, end)
        for budget in budgets:
            if budget.rpm:
                self._requests[budget.kind, budget.name].append(now)

    async def charge(self, budgets: list[Budget], tokens: int) -> None:
        """Charge the tokens a finished request used to the budgets that count tokens."""
        if tokens > 0:
            now = self.clock()
            for budget in budgets:
                for _, period, _ in _token_limits(budget):
                    self._window(budget, period, now)[1] += tokens

    def _window(self, budget: Budget, period: float, now: float) -> list:
        """The subject's current window for `period`: a new one opens with the first request after the last
        one ended."""
        window = self._tokens.get((budget.kind, budget.name, period))
        if window is None or window[0] <= now:
            window = self._tokens[budget.kind, budget.name, period] = [now + period, 0]
        return window

    async def close(self) -> None:
        pass


# The same counting in Redis, one script per admission so that a request costs one round trip whatever
# its budgets: a list of request times per subject (newest first, at most rpm long) and a hash {end, used}
# per token window. Times are the nodes' clocks, as the windows' ends are; Redis's own expiry only clears
# what nobody uses any more.
#   KEYS: per budget, its request list, its minute window and its day window.
#   ARGV: now, the estimated tokens, then per budget its rpm, tpm and tokens per day (0: no limit).
# Returns nothing when admitted, else {budget index, 0 for requests or 1/2 for a token limit,
# when it resets, tokens used}.
_ADMIT = """
-- times are written with %.17g: Lua's tostring keeps 14 digits, which rounds an epoch time by 0.1 ms
local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local periods = {60, 86400}
local budgets = #KEYS / 3
for b = 0, budgets - 1 do
  local rpm = tonumber(ARGV[3 + 3 * b])
  if rpm > 0 then
    local oldest = redis.call('LINDEX', KEYS[1 + 3 * b], rpm - 1)
    if oldest and tonumber(oldest) > now - 60 then
      return {b, 0, string.format('%.17g', tonumber(oldest) + 60), '0'}
    end
  end
  for w = 1, 2 do
    local limit = tonumber(ARGV[3 + 3 * b + w])
    if limit > 0 then
      local window = redis.call('HMGET', KEYS[1 + 3 * b + w], 'end', 'used')
      if window[1] and tonumber(window[1]) > now then
        if tonumber(window[2]) + cost > limit then
          return {b, w, window[1], window[2]}
        end
      else
        redis.call('HSET', KEYS[1 + 3 * b + w], 'end', string.format('%.17g', now + periods[w]), 'used', 0)
        redis.call('EXPIRE', KEYS[1 + 3 * b + w], periods[w] + 1)
      end
    end
  end
end
for b = 0, budgets - 1 do
  local rpm = tonumber(ARGV[3 + 3 * b])
  if rpm > 0 then
    redis.call('LPUSH', KEYS[1 + 3 * b], ARGV[1])
    redis.call('LTRIM', KEYS[1 + 3 * b], 0, rpm - 1)
    redis.call('EXPIRE', KEYS[1 + 3 * b], 61)
  end
end
"""

_WINDOW_KEYS = {MINUTE: "tokens:minute", DAY: "tokens:day"}  # a subject's token windows, after its prefix

# KEYS: token windows; ARGV: now, tokens, then each window's period.
_CHARGE = """
local now = tonumber(ARGV[1])
for k = 1, #KEYS do
  local ends = redis.call('HGET', KEYS[k], 'end')
  if ends and tonumber(ends) > now then
    redis.call('HINCRBY', KEYS[k], 'used', ARGV[2])
  else
    local period = tonumber(ARGV[2 + k])
    redis.call('HSET', KEYS[k], 'end', string.format('%.17g', now + period), 'used', ARGV[2])
    redis.call('EXPIRE', KEYS[k], period + 1)
  end
end
"""


class RedisLimits:
    """The limits counted in Redis, for every node that shares it: one script call per admission and one per
    charge (the `limits` library took a round trip per limit, for each check and each charge), and calls
    that arrive together share a round trip (access/script_batch.py)."""

    def __init__(self, redis, prefix: str, clock=time.time):
        self.redis = redis
        self.prefix = prefix
        self.clock = clock
        self._admit = redis.register_script(_ADMIT)
        self._charge = redis.register_script(_CHARGE)
        self._batch = ScriptBatch(redis)

    async def admit(self, budgets: list[Budget], estimated_tokens: int) -> None:
        keys, args = [], [repr(self.clock()), max(1, estimated_tokens)]
        for budget in budgets:
            base = self._base(budget)
            keys += (base + "requests", base + _WINDOW_KEYS[MINUTE], base + _WINDOW_KEYS[DAY])
            args += (budget.rpm or 0, budget.tpm or 0, budget.tokens_per_day or 0)
        refused = await self._batch.run(self._admit, keys, args)
        if refused:
            index, limit_kind, reset, used = refused
            budget = budgets[index]
            reset = float(reset)
            if limit_kind == 0:
                raise _limited(budget, "requests per minute", budget.rpm, 0, reset, "requests")
            limit, what = (budget.tpm, "tokens per minute") if limit_kind == 1 else (budget.tokens_per_day,
                                                                                     "tokens per day")
            raise _refused(budget, estimated_tokens, limit, what, limit - int(used), reset)

    async def charge(self, budgets: list[Budget], tokens: int) -> None:
        if tokens > 0:
            keys, args = [], [repr(self.clock()), tokens]
            for budget in budgets:
                base = self._base(budget)
                for _, period, _ in _token_limits(budget):
                    keys.append(base + _WINDOW_KEYS[period])
                    args.append(int(period))
            if keys:
                await self._batch.run(self._charge, keys, args)

    def _base(self, budget: Budget) -> str:
        # A key's id, never the key itself.
        return f"{self.prefix}:{budget.kind}:{budget.name}:"

    async def close(self) -> None:
        await self.redis.aclose()


def _token_limits(budget: Budget):
    if budget.tpm:
        yield budget.tpm, MINUTE, "tokens per minute"
    if budget.tokens_per_day:
        yield budget.tokens_per_day, DAY, "tokens per day"


def _refused(budget: Budget, estimated_tokens: int, limit: int, what: str, remaining: int,
             reset: float) -> RateLimited:
    """A request over a token limit: too large ever to fit, or to fit before the window resets."""
    if estimated_tokens > limit:
        return _too_large(budget, estimated_tokens, limit, what)
    return _limited(budget, what, limit, remaining, reset, "tokens")


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
