"""Redis script calls that share round trips: while one call is in flight, the calls that arrive meanwhile
wait for it and then go to Redis together, as one pipeline.

redis-py's cost per command sent alone (a connection from the pool, its hooks, a write and a poll of the
socket) is mostly shared in a pipeline. A lone call is sent at once, so nothing waits when the node is quiet.
"""

import asyncio

from redis.exceptions import NoScriptError


class ScriptBatch:
    def __init__(self, redis):
        self.redis = redis
        self._waiting: list[tuple] = []  # (script, keys, args, future)
        self._busy = False
        self._flusher: asyncio.Task | None = None  # held: the loop keeps only a weak reference to a task

    async def run(self, script, keys: list, args: list):
        if not self._busy:
            self._busy = True
            try:
                return await script(keys, args)
            finally:
                self._flush_or_rest()
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((script, keys, args, future))
        return await future

    def _flush_or_rest(self) -> None:
        if self._waiting:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        else:
            self._busy = False

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    results = await self._send(batch)
                except Exception as exc:  # noqa: BLE001 - Redis is away: every call of the batch hears it
                    results = [exc] * len(batch)
                for (_, _, _, future), result in zip(batch, results):
                    if future.done():  # its request was cancelled meanwhile
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._busy = False

    async def _send(self, batch: list[tuple]) -> list:
        pipe = self.redis.pipeline(transaction=False)
        for script, keys, args, _ in batch:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        results = await pipe.execute(raise_on_error=False)
        for index, result in enumerate(results):
            if isinstance(result, NoScriptError):  # Redis restarted and forgot its scripts: load them again
                script, keys, args, _ = batch[index]
                try:
                    results[index] = await script(keys, args)
                except Exception as exc:  # noqa: BLE001 - handed to the call's future
                    results[index] = exc
        return results
