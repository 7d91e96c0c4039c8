"""Which headers cross the node, in each direction, when it relays a request as it is."""

from llmrelay.providers.upstream import Upstream

# RFC 9110 section 7.6.1: meaningful for one connection only.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate", b"proxy-authorization",
    b"te", b"trailer", b"transfer-encoding", b"upgrade",
})

# Client headers that must never reach an upstream: the node's own credentials and controls, cookies,
# and what the HTTP client sets itself.
_NOT_UPSTREAM = HOP_BY_HOP | {
    b"host", b"content-length", b"expect", b"authorization", b"cookie", b"x-api-key", b"api-key",
    b"accept-encoding", b"x-request-id",
}

# Upstream headers the node replaces with its own or that belong to the node-upstream connection.
_NOT_DOWNSTREAM = HOP_BY_HOP | {b"content-length", b"set-cookie", b"date", b"server", b"x-request-id"}


def _listed(connection: bytes) -> frozenset[bytes]:
    """The header names a sender marked as hop-by-hop in its Connection header."""
    return frozenset(token.strip().lower() for token in connection.split(b","))


def upstream_request_headers(client_headers, upstream: Upstream, request_id: str) -> dict[bytes, bytes]:
    """Client headers minus hop-by-hop and secrets, plus the upstream's credentials (as bytes, the way they
    arrived and will leave). Names arrive lower-cased (the server protocol does it)."""
    headers: dict[bytes, bytes] = {}
    connection = None
    for key, value in client_headers:
        if key in _NOT_UPSTREAM:
            if key == b"connection":
                connection = value
        elif not key.startswith(b"x-llmrelay-"):
            headers[key] = value
    if connection is not None:
        for name in _listed(connection):
            headers.pop(name, None)
    defaults, auth = _encoded(upstream)
    for key, value in defaults:
        headers.setdefault(key, value)
    headers.update(auth)
    headers[b"accept-encoding"] = b"identity"
    headers[b"x-request-id"] = request_id.encode()
    return headers


_ENCODED: dict[int, tuple] = {}  # id(upstream) -> (upstream, defaults, auth); hashing the dataclass costs more


def _encoded(upstream: Upstream) -> tuple[tuple, tuple]:
    """The upstream's default and credential headers as bytes, encoded once."""
    entry = _ENCODED.get(id(upstream))
    if entry is None or entry[0] is not upstream:
        if len(_ENCODED) > 256:
            _ENCODED.clear()
        defaults = ((b"content-type", b"application/json"),) + tuple(
            (k.encode("latin-1"), v.encode("latin-1")) for k, v in upstream.default_headers)
        auth = tuple((k.encode("latin-1"), v.encode("latin-1")) for k, v in upstream.auth_headers)
        entry = _ENCODED[id(upstream)] = (upstream, defaults, auth)
    return entry[1], entry[2]


def client_response_headers(upstream_raw_headers) -> list[tuple[bytes, bytes]]:
    """Upstream response headers to relay; the upstream's own request id is kept under another name."""
    headers = []
    connection = None
    for key, value in upstream_raw_headers:
        name = key.lower()
        if name not in _NOT_DOWNSTREAM:
            headers.append((name, value))
        elif name == b"x-request-id":
            headers.append((b"x-upstream-request-id", value))
        elif name == b"connection":
            connection = value
    if connection is not None:
        listed = _listed(connection)
        headers = [(name, value) for name, value in headers if name not in listed]
    return headers
