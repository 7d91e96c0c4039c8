"""An upstream endpoint as the node reaches it: where to send, which credentials to add, how to probe it."""

from dataclasses import dataclass, replace
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str  # stable label for logs and /ready: "ollama", "openai", "anthropic", ...
    base_url: str  # the API root other endpoints hang off (Ollama: no /api; OpenAI: with /v1)
    chat_url: str
    probe_url: str
    setting: str  # the variable that configures it, for error messages
    # Always set, replacing anything a client sent (credentials).
    auth_headers: tuple[tuple[str, str], ...] = ()
    # Set only when the client did not send them (API versions, extra headers from the config file).
    default_headers: tuple[tuple[str, str], ...] = ()
    connect_timeout: float | None = None  # None: the node's setting
    first_byte_timeout: float | None = None
    idle_timeout: float | None = None
    total_timeout: float | None = None
    max_connections: int | None = None  # to its host at once; None: the node's LLMRELAY_MAX_CONNECTIONS_PER_HOST

    @property
    def display_url(self) -> str:
        """The chat URL without user:password, query or fragment (where keys go), safe for logs and errors."""
        return for_display(self.chat_url)

    def headers(self) -> dict[str, str]:
        """Headers for a request the node makes itself (not relaying a client's)."""
        headers = dict(self.default_headers)
        headers.update(self.auth_headers)
        headers["content-type"] = "application/json"
        headers["accept-encoding"] = "identity"
        return headers


def for_display(url: str) -> str:
    """`url` without user:password, query and fragment: an API key may be in any of them. A URL without a
    host (local:/path/to/model.gguf) is a file's path, shown whole."""
    parts = urlsplit(url)
    if not parts.netloc or ("@" not in parts.netloc and "?" not in url and "#" not in url):
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def origin(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def capped(upstream: Upstream | None, max_connections: int | None) -> Upstream | None:
    """`upstream` with a cap on its host's connections (None: unchanged)."""
    if upstream is None or max_connections is None:
        return upstream
    return replace(upstream, max_connections=max_connections)
