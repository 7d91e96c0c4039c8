"""Which web pages may use the node through a visitor's browser.

A node on loopback without keys answers anything that reaches it, and a browser reaches it for any page the
user opens: through DNS rebinding (the attacker's name resolving to 127.0.0.1, so the page is "same-origin"
with the node) or with a cross-site request that needs no preflight (a `text/plain` POST). Both are closed
here, as Ollama closes them:

- on a node without keys, the Host header must name the node: an IP address, `localhost` (or a name under
  `.localhost`), or a name in LLMRELAY_ALLOWED_HOSTS. A rebinding page always comes with its own host name.
- a request with an Origin header is served only when that origin is the node's own (the chat page and the
  dashboard) or listed in LLMRELAY_ALLOWED_ORIGINS; listed origins also get CORS headers and preflights, so
  a browser app may call the node with a key.
"""

import ipaddress

from llmrelay.access.keys import KeyStore
from llmrelay.core.errors import BadRequest, Forbidden

ANY = "*"
_CACHED_HOST_BYTES = 255
_ALLOW_METHODS = b"GET, POST, DELETE, OPTIONS"
_EXPOSE_HEADERS = b"x-request-id, retry-after, x-upstream-request-id"
_PREFLIGHT_MAX_AGE = b"600"


def names(setting: str | None) -> frozenset[str]:
    """A comma-separated setting as a set of lower-case entries."""
    return frozenset(part.strip().lower().rstrip("/") for part in (setting or "").split(",") if part.strip())


class BrowserGuard:
    def __init__(self, keys: KeyStore, allowed_hosts: str | None, allowed_origins: str | None):
        self.keys = keys
        self.allowed_hosts = names(allowed_hosts)
        self.allowed_origins = names(allowed_origins)
        self._known_hosts: dict[bytes, bool] = {}  # Host header -> allowed; bounded below

    def check(self, ex) -> list[tuple[bytes, bytes]] | None:
        """Raise Forbidden for a request a page may not make; the CORS headers its answer needs, if any."""
        headers = ex.scope["headers"]
        named = dict(headers)  # in C: cheaper than a loop over the headers in Python
        host = named.get(b"host")
        origin = named.get(b"origin")
        if len(named) != len(headers) and sum(name == b"host" for name, _ in headers) > 1:
            raise BadRequest("the request has more than one Host header; send one")
        known = host is None or self._known_hosts.get(host, False)
        if not known and not self.keys.required and not self.host_allowed(host):
            shown = host.decode("latin-1")[:100]
            raise Forbidden(f"the Host header {shown!r} does not name this node, as when a web page reaches it "
                            "through DNS rebinding; if you reach the node under that name, add it to "
                            "LLMRELAY_ALLOWED_HOSTS")
        if origin is None:
            return None
        text = origin.decode("latin-1").lower()
        if host is not None and text == f"{ex.scope['scheme']}://{host.decode('latin-1').lower()}":
            return None  # the node's own pages
        if ANY in self.allowed_origins or text in self.allowed_origins:
            return [(b"access-control-allow-origin", origin), (b"vary", b"origin"),
                    (b"access-control-expose-headers", _EXPOSE_HEADERS)]
        raise Forbidden(f"requests from web pages at {text[:100]!r} are refused, so that no site can use this "
                        "node through its visitors' browsers; to let that site's pages call the node, add its "
                        "origin to LLMRELAY_ALLOWED_ORIGINS")

    def host_allowed(self, host: bytes) -> bool:
        known = self._known_hosts.get(host)
        if known is None:
            known = self._host_allowed(host.decode("latin-1").lower())
            if len(host) <= _CACHED_HOST_BYTES:  # the names a node is really reached under are short
                if len(self._known_hosts) > 1024:
                    self._known_hosts.clear()
                self._known_hosts[host] = known
        return known

    def _host_allowed(self, host: str) -> bool:
        if ANY in self.allowed_hosts:
            return True
        if host.startswith("["):  # [v6] or [v6]:port
            name, bracket, port = host[1:].partition("]")
            if not bracket or (port and not (port[0] == ":" and port[1:].isdigit())):
                return False
        else:
            name, colon, port = host.partition(":")
            if colon and not port.isdigit():
                return False
        if name == "localhost" or name.endswith(".localhost") or name in self.allowed_hosts:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    @staticmethod
    def is_preflight(ex) -> bool:
        return ex.method == "OPTIONS" and ex.header(b"access-control-request-method") is not None

    async def preflight(self, ex) -> None:
        """Answer a CORS preflight from an allowed origin (`check` has refused the others and put the origin's
        CORS headers on the exchange)."""
        headers = [(b"content-length", b"0"), (b"access-control-allow-methods", _ALLOW_METHODS),
                   (b"access-control-max-age", _PREFLIGHT_MAX_AGE)]
        requested = ex.header(b"access-control-request-headers")
        if requested:
            headers.append((b"access-control-allow-headers", requested))
        await ex.start(204, headers)
        await ex.body(b"")
