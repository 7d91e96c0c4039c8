"""Which headers cross the node, in each direction, when it relays a request as it is."""

from llmrelay.providers.http1 import SET_HERE, USER_AGENT_LINE
from llmrelay.providers.upstream import Upstream

# RFC 9110 section 7.6.1: meaningful for one connection only.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate", b"proxy-authorization",
    b"te", b"trailer", b"transfer-encoding", b"upgrade",
})

# Client headers relayed to an upstream of the client's own API, by allowlist: what describes the request and
# the API features it asks for. Everything else stays at the node: credentials and organization or project ids
# (never next to the node's key: configure them on the deployment's `headers`), cookies, hop-by-hop headers,
# the node's own X-LLMRelay-* controls, and anything unknown.
_FORWARDED = frozenset({b"content-type", b"accept", b"user-agent", b"traceparent", b"tracestate"})
FORWARDED_HEADERS = {
    "openai": _FORWARDED | {b"openai-beta"},
    "anthropic": _FORWARDED | {b"anthropic-version", b"anthropic-beta"},
}
# Another node of the cluster answers in any API, and honours the node's own controls.
TO_PEER = frozenset().union(*FORWARDED_HEADERS.values()) | {b"x-llmrelay-drop-params"}
PEER_PREFIX = "node "  # the name of a peer node as an upstream: "node <id>"

# Upstream headers the node replaces with its own or that belong to the node-upstream connection, the
# operator's account with the provider (its organization and project), and what a browser would apply to the
# node's own origin (HSTS, alternative services). CORS headers are the node's own (access/browsers.py).
_NOT_DOWNSTREAM = HOP_BY_HOP | {
    b"content-length", b"set-cookie", b"date", b"server", b"x-request-id", b"openai-organization",
    b"openai-project", b"anthropic-organization-id", b"strict-transport-security", b"alt-svc",
    b"access-control-allow-origin", b"access-control-allow-credentials", b"access-control-allow-methods",
    b"access-control-allow-headers", b"access-control-expose-headers", b"access-control-max-age",
}


def _listed(connection: bytes) -> frozenset[bytes]:
    """The header names a sender marked as hop-by-hop in its Connection header."""
    return frozenset(token.strip().lower() for token in connection.split(b","))


def upstream_request_lines(client_headers, upstream: Upstream, request_id: str) -> list[bytes]:
    """The upstream request's header lines (b"name: value", as the HTTP client sends a list): the client's
    headers that its upstream's allowlist names, the upstream's defaults where the client sent none, its
    credentials, a user agent, and the request id. One pass, straight to the lines, with no dict in between
    (on a stream's first chunk, it shows). Names arrive lower-cased (the server protocol does it)."""
    defaults, auth_names, auth_lines = _upstream_lines(upstream)
    allowed = FORWARDED_HEADERS.get(upstream.name) or (
        TO_PEER if upstream.name.startswith(PEER_PREFIX) else _FORWARDED)
    lines = []
    names = []  # of the relayed lines, in step
    connection = None
    for key, value in client_headers:
        if key in allowed:
            if key not in auth_names:
                lines.append(key + b": " + value)
                names.append(key)
        elif key == b"connection":
            connection = value
    if connection is not None:  # a sender may mark any header hop-by-hop
        listed = _listed(connection)
        kept = [index for index, name in enumerate(names) if name not in listed]
        lines, names = [lines[index] for index in kept], [names[index] for index in kept]
    for name, line in defaults:
        if name not in names:
            lines.append(line)
            names.append(name)  # a configured user agent stands for the node's
    lines.extend(auth_lines)
    if b"user-agent" not in names:
        lines.append(USER_AGENT_LINE)
    lines.append(b"accept-encoding: identity")
    lines.append(b"x-request-id: " + request_id.encode())
    return lines


_LINES: dict[int, tuple] = {}  # id(upstream) -> (upstream, lines...); hashing the dataclass costs more


def _upstream_lines(upstream: Upstream) -> tuple[tuple, frozenset, tuple]:
    """The upstream's default headers as (name, line), its credential headers' names and lines; made once."""
    entry = _LINES.get(id(upstream))
    if entry is None or entry[0] is not upstream:
        if len(_LINES) > 256:
            _LINES.clear()
        # Framing headers are the HTTP client's alone, whatever a config file says; credentials replace a
        # default of the same name.
        auth = [(k, v) for k, v in upstream.auth_headers if _name(k) not in SET_HERE]
        auth_names = frozenset(_name(k) for k, _ in auth)
        defaults = [(k, v) for k, v in (("content-type", "application/json"), *upstream.default_headers)
                    if _name(k) not in SET_HERE and _name(k) not in auth_names]
        entry = _LINES[id(upstream)] = (upstream, tuple((_name(k), _line(k, v)) for k, v in defaults), auth_names,
                                        tuple(_line(k, v) for k, v in auth))
    return entry[1], entry[2], entry[3]


def _name(name: str) -> bytes:
    return name.lower().encode("latin-1")


def _line(name: str, value: str) -> bytes:
    return f"{name.lower()}: {value}".encode("latin-1")


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
