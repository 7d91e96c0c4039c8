"""One nesting limit for every JSON document a client or an upstream hands the node.

orjson parses up to 1024 levels but serialises only up to 254, and the node's own walks over a request
recurse: a document between the two parsed fine and then failed mid-request with a 500. Refusing anything
deeper than MAX_DEPTH at parse time turns that into a 400 that says why.
"""

from typing import Any

import orjson

from llmrelay.core.errors import BadRequest

MAX_DEPTH = 128

_KEEP = bytes(b for b in range(256) if b not in b'[]{}"')  # everything but brackets and quotes goes
_ONE_KIND = bytes.maketrans(b"{}", b"[]")


def too_deep(document: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether `document` nests arrays and objects more than `limit` levels deep.

    Counting brackets settles almost every request at C speed. Beyond that, still without a Python loop per
    byte: escapes removed (`\\` first, so every `\"` left is an escaped quote), everything but brackets and
    quotes dropped, then the strings' insides; brackets made one kind, and one level of innermost pairs peeled
    off per pass (bytes.replace removes every innermost pair, and only those, in one pass)."""
    if document.count(b"[") + document.count(b"{") <= limit:
        return False
    shape = document.replace(b"\\\\", b"").replace(b'\\"', b"").translate(_ONE_KIND, _KEEP)
    # Quotes now alternate open and close; removing any two adjacent ones keeps that so (an empty string goes,
    # or two strings merge), and leaves only strings that hold brackets to split out.
    shape = shape.replace(b'""', b"")
    if b'"' in shape:
        shape = b"".join(shape.split(b'"')[::2])
    for _ in range(limit):
        peeled = shape.replace(b"[]", b"")
        if len(peeled) == len(shape):  # empty, or unbalanced: the parser says what is wrong
            return False
        shape = peeled
    return bool(shape)


def loads(document: bytes | str, what: str = "the request body") -> Any:
    """`orjson.loads`, refusing documents nested deeper than MAX_DEPTH (BadRequest naming `what`)."""
    data = document.encode() if isinstance(document, str) else document
    if too_deep(data):
        raise BadRequest(f"{what} nests arrays and objects more than {MAX_DEPTH} levels deep; flatten it")
    return orjson.loads(data)
