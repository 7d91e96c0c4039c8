"""Recorded wire fixtures for the translation unit tests (tests/providers/<api>/, tests/surfaces/<api>/).

Each test folder keeps its fixtures in `fixtures/` next to it: upstream answers and streams in the official
APIs' shapes, and the requests and client bytes the node is expected to produce. Run the tests with
LLMRELAY_RECORD_FIXTURES=1 to rewrite the *expected* fixtures from what the code produces now (then read the
diff: a fixture is only worth something if a person checked it against the API's reference).
"""

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import orjson

RECORD = os.environ.get("LLMRELAY_RECORD_FIXTURES") == "1"


def fixture(test_file: str, name: str) -> Path:
    return Path(test_file).parent / "fixtures" / name


def load_json(test_file: str, name: str):
    return orjson.loads(fixture(test_file, name).read_bytes())


def load_bytes(test_file: str, name: str) -> bytes:
    return fixture(test_file, name).read_bytes()


def assert_json_fixture(actual, test_file: str, name: str) -> None:
    path = fixture(test_file, name)
    if RECORD:
        path.write_bytes(orjson.dumps(actual, option=orjson.OPT_INDENT_2) + b"\n")
    assert actual == orjson.loads(path.read_bytes())


def assert_bytes_fixture(actual: bytes, test_file: str, name: str) -> None:
    path = fixture(test_file, name)
    if RECORD:
        path.write_bytes(actual)
    assert actual.decode() == path.read_bytes().decode()  # str: pytest shows a readable diff


# ---- Streams: an upstream's body as the HTTP client hands it over, in pieces ----

class RecordedResponse:
    """What the record splitters in providers/wire.py read: `iter_chunks()` over the recorded body, cut into
    the given pieces (as TCP reads and chunked framing cut a real one), and `close()`."""

    def __init__(self, pieces: list[bytes]):
        self.pieces = pieces
        self.closed = False

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            await asyncio.sleep(0)  # a real read suspends
            yield piece

    def close(self) -> None:
        self.closed = True


def cut_every(data: bytes, size: int) -> list[bytes]:
    return [data[start:start + size] for start in range(0, len(data), size)]


def cut_mid_lines(data: bytes) -> list[bytes]:
    """Cut through the middle of every line, and right before each newline (leaving it for the next piece)."""
    pieces, start = [], 0
    for match in re.finditer(rb"\n", data):
        end = match.start()
        middle = (start + end) // 2
        pieces += [data[start:middle], data[middle:end]]
        start = end
    pieces.append(data[start:])
    return [piece for piece in pieces if piece]


# Whole, one byte at a time, odd sizes, and through the middle of every line.
CUTS = {
    "whole": lambda data: [data],
    "bytes": lambda data: cut_every(data, 1),
    "sevens": lambda data: cut_every(data, 7),
    "mid-line": cut_mid_lines,
}


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 5))


async def drain(events: AsyncIterator) -> list:
    return [event async for event in events]


# ---- Normalising what the node makes up (ids, clocks) before comparing with a fixture ----

_OPENAI_IDS = re.compile(rb'"id":"chatcmpl-[0-9a-f]+"')
_CREATED = re.compile(rb'"created":\d+')
_MESSAGE_IDS = re.compile(rb'"id":"msg_[0-9a-f]+"')
_CREATED_AT = re.compile(rb'"created_at":"[0-9T:.Z-]+"')
_DURATION = re.compile(rb'"total_duration":\d+')


def normalised(data: bytes) -> bytes:
    data = _OPENAI_IDS.sub(b'"id":"chatcmpl-test"', data)
    data = _CREATED.sub(b'"created":1700000000', data)
    data = _MESSAGE_IDS.sub(b'"id":"msg_test"', data)
    data = _CREATED_AT.sub(b'"created_at":"2024-01-01T00:00:00.000000000Z"', data)
    return _DURATION.sub(b'"total_duration":1000', data)


def normalised_json(document: dict) -> dict:
    return orjson.loads(normalised(orjson.dumps(document)))
