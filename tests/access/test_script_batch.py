"""Redis script calls made together share round trips, each call still gets its own answer, and a Redis that
forgets its scripts or goes away is survived (on a Redis server of the tests' own)."""

import asyncio

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from llmrelay.access.script_batch import ScriptBatch
from tests.support.node import free_port

COUNT = "return {KEYS[1], redis.call('INCRBY', KEYS[1], ARGV[1])}"


def counting(url: str, **options):
    """A client of the Redis at `url`, a batch on it and the counting script."""
    redis = aioredis.from_url(url, **options)
    return redis, ScriptBatch(redis), redis.register_script(COUNT)


def reads_processed(redis_server) -> int:
    return redis_server.client().info("stats")["total_reads_processed"]


def test_calls_made_together_share_round_trips_and_keep_their_own_answers(redis_server):
    prefix = f"batch-{free_port()}"

    async def scenario():
        redis, batch, script = counting(redis_server.url)
        await batch.run(script, [f"{prefix}:warm"], [1])
        before = reads_processed(redis_server)
        answers = await asyncio.gather(*(batch.run(script, [f"{prefix}:{n % 5}"], [n]) for n in range(100)))
        reads = reads_processed(redis_server) - before
        await redis.aclose()
        return answers, reads
    answers, reads = asyncio.run(scenario())
    # each call's answer is its own: the counter it named, after its own increment
    for n, (key, total) in enumerate(answers):
        assert key.decode() == f"{prefix}:{n % 5}"
        assert total == sum(m for m in range(n + 1) if m % 5 == n % 5)
    # the first went alone; the 99 that came while it was in flight went together
    assert reads <= 10, reads


def test_a_redis_that_forgot_its_scripts_is_taught_them_again(redis_server):
    async def scenario():
        redis, batch, script = counting(redis_server.url)
        await batch.run(script, ["forgot"], [1])
        await redis.script_flush()  # what a restarted Redis knows
        answers = await asyncio.gather(*(batch.run(script, ["forgot"], [1]) for _ in range(20)))
        await redis.aclose()
        return sorted(total for _, total in answers)
    assert asyncio.run(scenario()) == list(range(2, 22))


def test_a_cancelled_call_leaves_the_others_their_answers(redis_server):
    async def scenario():
        redis, batch, script = counting(redis_server.url)
        calls = [asyncio.ensure_future(batch.run(script, ["cancelled"], [1])) for _ in range(10)]
        await asyncio.sleep(0)
        calls[5].cancel()
        # a future answered after its call was cancelled would stop the batch: the others would wait forever
        answers = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)
        after = await batch.run(script, ["cancelled"], [0])
        await redis.aclose()
        return answers, after
    answers, after = asyncio.run(scenario())
    assert isinstance(answers[5], asyncio.CancelledError)
    assert sorted(answer[1] for n, answer in enumerate(answers) if n != 5) == sorted(
        set(answer[1] for n, answer in enumerate(answers) if n != 5))  # nine distinct counts, all answered
    assert after[1] in (9, 10)  # the cancelled call may or may not have reached Redis; nothing hangs


def test_redis_going_away_fails_every_waiting_call_and_its_return_is_used():
    from tests.support.servers import RedisServer
    server = RedisServer()
    port = server.port

    async def scenario():
        redis, batch, script = counting(server.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        await batch.run(script, ["away"], [1])
        await asyncio.to_thread(server.stop)
        failed = await asyncio.gather(*(batch.run(script, ["away"], [1]) for _ in range(10)),
                                      return_exceptions=True)
        back = await asyncio.to_thread(RedisServer, port)
        try:
            answers = await asyncio.gather(*(batch.run(script, ["away"], [1]) for _ in range(10)))
        finally:
            await redis.aclose()
            await asyncio.to_thread(back.stop)
        return failed, answers
    try:
        failed, answers = asyncio.run(scenario())
    finally:
        server.stop()
    assert all(isinstance(result, (RedisConnectionError, OSError)) for result in failed), failed
    assert sorted(total for _, total in answers) == list(range(1, 11))  # a new Redis, counting from nothing


def test_the_batch_is_free_again_after_lone_and_shared_calls(redis_server):
    async def scenario():
        redis, batch, script = counting(redis_server.url)
        await batch.run(script, ["free"], [1])
        alone = batch._busy
        await asyncio.gather(*(batch.run(script, ["free"], [1]) for _ in range(5)))
        await asyncio.sleep(0)
        shared = batch._busy
        await redis.aclose()
        return alone, shared
    assert asyncio.run(scenario()) == (False, False)
