"""Bounded admission: at most `limit` holders at once, at most `queue_size` waiting, each for at most
`timeout` seconds. Nothing here grows without bound, whatever the load."""

import asyncio
from collections import deque

from llmrelay.core.errors import AtCapacity, RateLimited


class Admission:
    def __init__(self, name: str, limit: int, queue_size: int, timeout: float):
        self.name = name
        self.limit = limit
        self.queue_size = queue_size
        self.timeout = timeout
        self.in_flight = 0
        self.waiters: deque[asyncio.Future] = deque()

    @property
    def full(self) -> bool:
        return self.in_flight >= self.limit

    def try_enter(self) -> bool:
        """Take a slot if one is free and nobody waits for it: the usual case, without a coroutine."""
        if self.in_flight < self.limit and not self.waiters:
            self.in_flight += 1
            return True
        return False

    async def enter(self) -> None:
        if self.try_enter():
            return
        if len(self.waiters) >= self.queue_size:
            raise AtCapacity(f"{self.name} is at capacity and its queue is full; try again shortly",
                             headers={"Retry-After": "1"})
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.timeout)
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return  # the slot arrived just as the wait ended: keep it
            waiter.cancel()
            self._forget(waiter)
            raise RateLimited(f"{self.name} stayed at capacity for {self.timeout:g} s; try again shortly",
                              headers={"Retry-After": str(max(1, round(self.timeout)))}) from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.leave()  # handed a slot, but the request went away: pass it on
            else:
                waiter.cancel()
                self._forget(waiter)
            raise

    def leave(self) -> None:
        """Free a slot, handing it straight to the longest waiter if there is one."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on; in_flight stays the same
                return
        self.in_flight -= 1

    def _forget(self, waiter: asyncio.Future) -> None:
        try:
            self.waiters.remove(waiter)
        except ValueError:
            pass
