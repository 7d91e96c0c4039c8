"""DisconnectWatch finds the task it must cancel without asking for the running loop each time."""

import asyncio

from llmrelay.asgi import DisconnectWatch


def test_the_task_found_is_the_running_one_on_every_loop_the_app_is_served_on():
    watch = DisconnectWatch()

    async def found_is_running() -> bool:
        inner = asyncio.get_running_loop().create_task(asyncio.sleep(0))  # another task exists on the loop
        found = watch.current_task()
        await inner
        return found is asyncio.current_task()

    # The same app served twice, each time on a new loop (a test suite, a restarted server).
    assert asyncio.run(found_is_running())
    assert asyncio.run(found_is_running())
    watch.close()
