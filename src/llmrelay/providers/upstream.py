"""An upstream endpoint as the node reaches it: where to send, which credentials to add, how to probe it."""

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str  # stable label for logs and /ready: "ollama", "openai", "anthropic"
    chat_url: str
    probe_url: str
    setting: str  # the variable that configures it, for error messages
    # Always set, replacing anything a client sent (credentials).
    auth_headers: tuple[tuple[str, str], ...] = ()
    # Set only when the client did not send them (API versions).
    default_headers: tuple[tuple[str, str], ...] = ()

    @property
    def display_url(self) -> str:
        """The chat URL without any user:password part, safe for logs and errors."""
        return without_userinfo(self.chat_url)


def without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def origin(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))
