"""One nesting limit for every JSON document a client or an upstream hands the node.

orjson parses up to 1024 levels but serialises only up to 254, and the node's own walks over a request
recurse: a document between the two parsed fine and then failed mid-request with a 500. Refusing anything
deeper than MAX_DEPTH at parse time turns that into a 400 that says why.
"""

from itertools import accumulate
from typing import Any

import orjson

from llmrelay.core.errors import BadRequest

MAX_DEPTH = 128

_KEEP = bytes(b for b in range(256) if b not in b'[]{}"')  # everything but brackets and quotes goes
_ONE_KIND = bytes.maketrans(b"{}", b"[]")
_SIGNED = bytes.maketrans(b"[]", b"\x01\xff")  # an open bracket +1, a close bracket -1 (as signed bytes)
_PEELS = 4  # passes of innermost pairs: real documents shrink to almost nothing in one or two
_CHUNK = 64 * 1024  # the running depth is summed a chunk at a time, so a long document never holds the GIL long


def too_deep(document: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether `document` nests arrays and objects more than `limit` levels deep.

    Counting brackets settles almost every request at C speed. Beyond that, still without a Python loop per
    byte: escapes removed (`\\\\` first, so every `\\"` left is an escaped quote), everything but brackets and
    quotes dropped, then the strings' insides, and brackets made one kind. `limit + 1` opening brackets in a
    row settle it at once; a few passes peel the innermost pairs off (bytes.replace removes every innermost
    pair, and only those, in one pass); what is left is measured by its running depth."""
    if document.count(b"[") + document.count(b"{") <= limit:
        return False
    shape = document.replace(b"\\\\", b"").replace(b'\\"', b"").translate(_ONE_KIND, _KEEP)
    # Quotes now alternate open and close; removing any two adjacent ones keeps that so (an empty string goes,
    # or two strings merge), and leaves only strings that hold brackets to split out.
    shape = shape.replace(b'""', b"")
    if b'"' in shape:
        shape = b"".join(shape.split(b'"')[::2])
    if b"[" * (limit + 1) in shape:
        return True
    for _ in range(_PEELS):
        peeled = shape.replace(b"[]", b"")
        if len(peeled) == len(shape):  # empty, or unbalanced: the parser says what is wrong
            return False
        shape = peeled
        limit -= 1
        if not shape:
            return limit < 0
    signed = memoryview(shape.translate(_SIGNED)).cast("b")
    depth = deepest = 0
    for start in range(0, len(signed), _CHUNK):
        running = list(accumulate(signed[start:start + _CHUNK], initial=depth))
        deepest = max(deepest, max(running))
        depth = running[-1]
    return deepest > limit


def loads(document: bytes | str, what: str = "the request body") -> Any:
    """`orjson.loads`, refusing documents nested deeper than MAX_DEPTH (BadRequest naming `what`)."""
    data = document.encode() if isinstance(document, str) else document
    # too_deep's first test, here: most documents need no call
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH and too_deep(data):
        raise BadRequest(f"{what} nests arrays and objects more than {MAX_DEPTH} levels deep; flatten it")
    return orjson.loads(data)
