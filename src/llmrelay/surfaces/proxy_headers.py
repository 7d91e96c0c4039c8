"""Which headers cross the node, in each direction, when it relays a request as it is."""

from functools import lru_cache

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


def _listed_in_connection(headers) -> frozenset[bytes]:
    """Header names a sender marked as hop-by-hop in its Connection header."""
    for key, value in headers:
        if key.lower() == b"connection":
            return frozenset(token.strip().lower() for token in value.split(b","))
    return frozenset()


def upstream_request_headers(client_headers, upstream: Upstream, request_id: str) -> dict[bytes, bytes]:
    """Client headers minus hop-by-hop and secrets, plus the upstream's credentials (as bytes, the way they
    arrived and will leave)."""
    extra_hop = _listed_in_connection(client_headers)
    headers: dict[bytes, bytes] = {}
    for key, value in client_headers:
        if key in _NOT_UPSTREAM or key in extra_hop or key.startswith(b"x-llmrelay-"):
            continue
        headers[key] = value
    defaults, auth = _encoded(upstream)
    for key, value in defaults:
        headers.setdefault(key, value)
    headers.update(auth)
    headers[b"accept-encoding"] = b"identity"
    headers[b"x-request-id"] = request_id.encode()
    return headers


@lru_cache(maxsize=64)
def _encoded(upstream: Upstream) -> tuple[tuple, tuple]:
    """The upstream's default and credential headers as bytes, encoded once."""
    defaults = ((b"content-type", b"application/json"),) + tuple(
        (k.encode("latin-1"), v.encode("latin-1")) for k, v in upstream.default_headers)
    return defaults, tuple((k.encode("latin-1"), v.encode("latin-1")) for k, v in upstream.auth_headers)


def client_response_headers(upstream_raw_headers) -> list[tuple[bytes, bytes]]:
    """Upstream response headers to relay; the upstream's own request id is kept under another name."""
    extra_hop = _listed_in_connection(upstream_raw_headers)
    headers = []
    for key, value in upstream_raw_headers:
        name = key.lower()
        if name in _NOT_DOWNSTREAM or name in extra_hop:
            if name == b"x-request-id":
                headers.append((b"x-upstream-request-id", value))
            continue
        headers.append((name, value))
    return headers
