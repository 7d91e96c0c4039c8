"""Attempts, retries and fallbacks around one request.

An attempt takes a lease on a deployment and either returns (the upstream has started a good answer) or
raises. Retryable failures — no connection, no answer in time, 429, 5xx — are tried again on another
deployment when there is one, after an exponential backoff with jitter (or the upstream's Retry-After).
They count towards the deployment's cooldown unless the upstream's answer blamed the request's content
(a 500 saying the model does not exist or the prompt is too long: `core.errors.blames_request`).
When every attempt failed, the model's fallbacks are tried in order; a prompt too long for the model goes
to its context-window fallbacks. Nothing here runs once any byte of the answer has gone to the client: the
caller relays only what a successful attempt returned.
"""

import asyncio
import random
from collections.abc import Awaitable, Callable

from llmrelay.core.errors import RelayError
from llmrelay.routing.balancer import Balancer, Lease
from llmrelay.routing.models import ModelCatalog, Route
from llmrelay.settings import Settings

MAX_RETRY_AFTER = 5.0  # a longer Retry-After is not waited out: the error goes back to the client

Attempt = Callable[[Lease, bool], Awaitable]  # (lease, is this the last attempt?) -> result


class Retrier:
    def __init__(self, catalog: ModelCatalog, balancer: Balancer, settings: Settings):
        self.catalog = catalog
        self.balancer = balancer
        self.settings = settings
        self.retries_total = 0
        self.fallbacks_total = 0

    def run(self, route: Route, attempt: Attempt, leases: list) -> Awaitable:
        """The first successful attempt's result; its lease is appended to `leases` for the caller to release
        when the answer is done. (A plain function: a model without fallbacks, the usual case, goes straight
        to its deployments, a coroutine fewer on the way of its requests.)"""
        if not route.fallbacks and not route.context_window_fallbacks:
            return self._over_deployments(route, attempt, leases, last_route=True)
        return self._with_fallbacks(route, attempt, leases)

    async def _with_fallbacks(self, route: Route, attempt: Attempt, leases: list):
        try:
            return await self._over_deployments(route, attempt, leases, last_route=not route.fallbacks)
        except RelayError as error:
            names = route.context_window_fallbacks if error.context_window else (
                route.fallbacks if error.retryable else ())
            for index, name in enumerate(names):
                self.fallbacks_total += 1
                try:
                    return await self._over_deployments(self.catalog.route(name), attempt, leases,
                                                        last_route=index == len(names) - 1)
                except RelayError as fallback_error:
                    if not (fallback_error.retryable or fallback_error.context_window):
                        raise
                    error = fallback_error
            raise error

    async def _over_deployments(self, route: Route, attempt: Attempt, leases: list, last_route: bool):
        tried: set[str] = set()
        attempts = self.settings.retries + 1
        last_error: RelayError | None = None
        for number in range(attempts):
            try:
                deployment, health = self.balancer.pick(route, tried)
            except RelayError:
                if last_error is not None:
                    raise last_error from None  # the failure that cooled it down says more
                raise
            if health.admission is None:
                lease = self.balancer.take(deployment, health)
            else:
                lease = await self.balancer.lease(deployment, health)
            final = last_route and number == attempts - 1
            first_try_here = deployment.key not in tried
            tried.add(deployment.key)
            try:
                result = await attempt(lease, final)
            except RelayError as error:
                others = any(d.key not in tried for d in route.deployments)
                # One request counts once against a deployment's health, however often it retries there, and
                # not at all when the upstream blamed its content (core/errors.py, blames_request).
                if error.retryable and first_try_here and not error.request_fault:
                    lease.failed()
                else:
                    lease.release()
                if not error.retryable or number == attempts - 1:
                    raise
                last_error = error
                delay = 0.0 if others else self._delay(number, error)
                if (others or delay is None) and not error.request_fault:
                    # An upstream that said when to come back is left alone until then, unless we wait for it
                    # (or it only refused this one request: too large for its limit).
                    self.balancer.respect_retry_after(health, error.headers.get("Retry-After"))
                if delay is None:
                    raise
                self.retries_total += 1
                await asyncio.sleep(delay)
                continue
            except BaseException:
                lease.release()
                raise
            lease.first_byte()
            leases.append(lease)
            return result
        raise AssertionError("unreachable")

    def _delay(self, number: int, error: RelayError) -> float | None:
        """Exponential backoff with full jitter; the upstream's Retry-After when it gave one."""
        retry_after = error.headers.get("Retry-After")
        if retry_after:
            try:
                seconds = float(retry_after)
            except ValueError:
                seconds = MAX_RETRY_AFTER + 1
            return seconds if seconds <= MAX_RETRY_AFTER else None
        return random.uniform(0, self.settings.retry_backoff * (2 ** number))
