"""Choosing a deployment, and keeping each one's health, load and latency.

Strategies: `least-busy` (fewest requests in flight), `weighted` (random by weight), `latency` (lowest
moving average of time to first byte). A deployment that fails `cooldown_failures` times within
`cooldown_window` seconds is out of rotation for `cooldown_seconds`, then tried again; one whose upstream
answered with `Retry-After` is left alone that long, at most `cooldown_max` seconds.

Health is kept per upstream and model (`Deployment.key`), so failures of one model never take the others
on the same upstream out of rotation. Which failures count is the retrier's call (`RelayError.request_fault`).
"""

import random
import time
from collections import deque
from dataclasses import dataclass, field

from llmrelay.core.errors import CoolingDown
from llmrelay.routing.admission import Admission
from llmrelay.routing.models import Deployment, Route
from llmrelay.settings import Settings

_EWMA = 0.2  # weight of the newest time-to-first-byte sample
# Health entries of routes made from the environment, whose model names come from clients; past this many,
# the least telling quarter is forgotten (idle ones first, those failing or cooling down last).
ENVIRONMENT_HEALTH_KEPT = 1024


@dataclass
class Health:
    deployment: Deployment
    admission: Admission | None
    in_flight: int = 0
    failures: deque = field(default_factory=deque)  # monotonic times of recent failures
    cooldown_until: float = 0.0
    retry_after_until: float = 0.0  # the part of the cooldown the upstream asked for (a probe does not end it)
    ttfb: float | None = None  # seconds, moving average
    requests: int = 0
    errors: int = 0
    cooldowns: int = 0

    def cooling(self, now: float) -> bool:
        return now < self.cooldown_until

    def report(self, now: float) -> dict:
        upstream = self.deployment.upstream
        report = {"deployment": self.deployment.label, "provider": self.deployment.provider,
                  "model": self.deployment.model,
                  "url": upstream.display_url, "state": "cooling_down" if self.cooling(now) else "healthy",
                  "in_flight": self.in_flight, "recent_failures": len(self.failures), "requests": self.requests,
                  "errors": self.errors}
        if self.cooling(now):
            report["cooldown_seconds_left"] = round(self.cooldown_until - now, 1)
        if self.ttfb is not None:
            report["ttfb_ms"] = round(self.ttfb * 1000, 2)
        return report


class Lease:
    """A request's hold on a deployment, from the pick until its answer is done."""

    __slots__ = ("balancer", "health", "deployment", "started", "released")

    def __init__(self, balancer: "Balancer", health: Health, deployment: Deployment):
        self.balancer = balancer
        self.health = health
        self.deployment = deployment  # the route's own (an environment route names its model per request)
        self.started = time.monotonic()
        self.released = False

    def first_byte(self) -> None:
        elapsed = time.monotonic() - self.started
        health = self.health
        health.ttfb = elapsed if health.ttfb is None else (1 - _EWMA) * health.ttfb + _EWMA * elapsed

    def failed(self) -> None:
        self.balancer.failure(self.health)
        self.release()

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.health.in_flight -= 1
            if self.health.admission is not None:
                self.health.admission.leave()


class Balancer:
    def __init__(self, settings: Settings, on_cooldown=None):
        """`on_cooldown`: (Health) -> None, told of each cooldown begun here (the cluster shares them)."""
        self.settings = settings
        self.on_cooldown = on_cooldown
        self.health: dict[str, Health] = {}
        self._environment_entries = 0

    def health_of(self, deployment: Deployment) -> Health:
        return self._health(deployment)

    def _health(self, deployment: Deployment) -> Health:
        health = self.health.get(deployment.key)
        if health is not None:
            return health
        admission = None
        if deployment.max_in_flight:
            admission = Admission(f"deployment {deployment.model} at {deployment.upstream.display_url}",
                                  deployment.max_in_flight, self.settings.queue_size, self.settings.queue_timeout)
        if not deployment.configured:
            if self._environment_entries >= ENVIRONMENT_HEALTH_KEPT:
                self._forget_environment_entries()
            self._environment_entries += 1
        health = self.health[deployment.key] = Health(deployment, admission)
        return health

    def _forget_environment_entries(self) -> None:
        """Drop a quarter of the environment routes' entries: first those with nothing to remember (no request
        in flight, no recent failure), oldest first; a request still holding one releases it harmlessly."""
        now = time.monotonic()
        window = self.settings.cooldown_window

        def telling(health: Health) -> int:
            if health.cooling(now) or (health.failures and health.failures[-1] >= now - window):
                return 2
            return 1 if health.in_flight else 0
        entries = [(key, health) for key, health in self.health.items() if not health.deployment.configured]
        entries.sort(key=lambda entry: telling(entry[1]))  # stable: oldest first within each kind
        for key, _ in entries[: max(1, len(entries) // 4)]:
            del self.health[key]
        self._environment_entries = len(entries) - max(1, len(entries) // 4)

    def pick(self, route: Route, tried: set[str]) -> tuple[Deployment, Health]:
        """A deployment of `route` for the next attempt, and its health; ones already tried come last."""
        now = time.monotonic()
        if len(route.deployments) == 1:  # the common case, without the lists below
            deployment = route.deployments[0]
            health = self.health.get(deployment.key) or self._health(deployment)
            if now >= health.cooldown_until:  # not cooling down (Health.cooling, without the call)
                return deployment, health
        healths = [self._health(d) for d in route.deployments]
        by_key = {d.key: d for d in route.deployments}
        health = self._choose(route, healths, tried, now)
        return by_key[health.deployment.key], health

    def _choose(self, route: Route, healths: list[Health], tried: set[str], now: float) -> Health:
        available = [h for h in healths if not h.cooling(now)]
        if not available:
            soonest = min(h.cooldown_until for h in healths) - now
            raise CoolingDown(f"every deployment of model '{route.name}' is cooling down after repeated failures; "
                              f"try again in {soonest:.0f} s", headers={"Retry-After": str(max(1, round(soonest)))})
        fresh = [h for h in available if h.deployment.key not in tried] or available
        free = [h for h in fresh if h.admission is None or not h.admission.full] or fresh
        if len(free) == 1:
            return free[0]
        if route.strategy == "weighted":
            return random.choices(free, weights=[h.deployment.weight for h in free])[0]
        if route.strategy == "latency":
            untried = [h for h in free if h.ttfb is None]
            if untried:
                return random.choice(untried)  # measure every deployment before trusting the averages
            return min(free, key=lambda h: h.ttfb)
        fewest = min(h.in_flight for h in free)
        return random.choice([h for h in free if h.in_flight == fewest])

    async def lease(self, deployment: Deployment, health: Health) -> Lease:
        """A lease, after waiting for a slot when the deployment limits its requests in flight."""
        if health.admission is not None:
            await health.admission.enter()
        return self.take(deployment, health)

    def take(self, deployment: Deployment, health: Health) -> Lease:
        """A lease on a deployment without a limit of requests in flight (nothing to wait for)."""
        health.in_flight += 1
        health.requests += 1
        return Lease(self, health, deployment)

    def failure(self, health: Health) -> None:
        now = time.monotonic()
        health.errors += 1
        failures = health.failures
        failures.append(now)
        while failures and failures[0] < now - self.settings.cooldown_window:
            failures.popleft()
        if len(failures) >= self.settings.cooldown_failures:
            health.cooldown_until = now + self.settings.cooldown_seconds
            health.cooldowns += 1
            failures.clear()
            if self.on_cooldown is not None:
                self.on_cooldown(health)

    def respect_retry_after(self, health: Health, retry_after: str | None) -> None:
        """An upstream that said when to come back is left alone until then, but at most `cooldown_max`
        seconds: one answer (perhaps to one client's request) must not refuse a model for an hour."""
        try:
            seconds = float(retry_after) if retry_after else 0.0
        except ValueError:
            return
        if seconds > 0:
            seconds = min(seconds, self.settings.cooldown_max)
            health.retry_after_until = time.monotonic() + seconds
            health.cooldown_until = max(health.cooldown_until, health.retry_after_until)

    def recovered(self, health: Health) -> None:
        """A probe found it answering again: back into rotation before its cooldown ends, but not before the
        time the upstream itself asked for (a probe of the host says nothing of a model's rate limit)."""
        health.cooldown_until = health.retry_after_until if health.retry_after_until > time.monotonic() else 0.0
        health.failures.clear()

    def report(self) -> list[dict]:
        now = time.monotonic()
        return [health.report(now) for health in self.health.values()]

    def states(self) -> list[tuple[Health, bool]]:
        """Each deployment's health and whether it is cooling down now."""
        now = time.monotonic()
        return [(health, health.cooling(now)) for health in self.health.values()]
