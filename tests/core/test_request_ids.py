"""The ids the node gives requests that come without an X-Request-Id: random, unique, and never shared with a
forked worker process."""

import os
import re

from llmrelay.asgi import new_request_id

BATCH = 256  # ids are drawn this many at a time


def test_ids_are_128_random_bits_in_hex_and_unique_across_batches():
    ids = [new_request_id() for _ in range(3 * BATCH + 1)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in ids), ids[:3]
    assert len(set(ids)) == len(ids)
    assert len({value[:8] for value in ids}) > len(ids) // 2, "the ids look sequential, not random"


def test_a_forked_process_draws_its_own_ids():
    new_request_id()  # the parent now holds spare ids a careless child would repeat
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.write(writer, " ".join(new_request_id() for _ in range(10)).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        childs = set(pipe.read().split())
    os.waitpid(child, 0)
    parents = {new_request_id() for _ in range(10)}
    assert len(childs) == 10 and not childs & parents
