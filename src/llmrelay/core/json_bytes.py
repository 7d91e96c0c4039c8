"""Edit one top-level string field of a JSON document without re-serialising it.

Pass-through promises that the body reaches the upstream byte for byte, apart from the model name. A
`loads`/`dumps` round trip would reformat numbers, escapes and whitespace; this edits only the value's
bytes. The document must already have been parsed successfully (so it is valid JSON).
"""

import re

import orjson

# A JSON string (with escapes) or a bracket; everything else is irrelevant to finding top-level keys.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]]', re.DOTALL)
_COLON = re.compile(rb"\s*:")
_OPEN = frozenset(b"{[")
_CLOSE = frozenset(b"}]")


def replace_top_level_string(document: bytes, key: str, value: str) -> bytes:
    """Return `document` with every top-level `key`'s string value replaced by `value`."""
    encoded_value = orjson.dumps(value)
    pieces: list[bytes] = []
    copied_to = 0
    depth = 0
    value_starts_at = -1  # where the value of a matching key begins, or -1
    for match in _TOKEN.finditer(document):
        first = match.group()[0]
        if first in _OPEN:
            depth += 1
            value_starts_at = -1
            continue
        if first in _CLOSE:
            depth -= 1
            continue
        if depth != 1:
            continue
        if value_starts_at >= 0:
            # Only a string directly after the colon is the value (not the next key after a number).
            if not document[value_starts_at:match.start()].strip():
                pieces.append(document[copied_to:match.start()])
                pieces.append(encoded_value)
                copied_to = match.end()
                value_starts_at = -1
                continue
            value_starts_at = -1
        colon = _COLON.match(document, match.end())
        if colon and orjson.loads(match.group()) == key:
            value_starts_at = colon.end()
    if not pieces:
        return document
    pieces.append(document[copied_to:])
    return b"".join(pieces)
