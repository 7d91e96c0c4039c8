"""The chat page and the dashboard: static files the node serves itself (no CDN, works offline).

Files are read once at start and kept in memory. Pages carry a strict Content-Security-Policy: scripts
and styles only from the node, requests only to the node; the scripts never put model text into HTML.
"""

import hashlib
from importlib import resources

from llmrelay.asgi import Exchange
from llmrelay.core.errors import NotFound

STATIC_PATH = "/static/"
PAGES = {"/": "chat.html", "/chat": "chat.html", "/dashboard": "dashboard.html"}
_TYPES = {"html": b"text/html; charset=utf-8", "js": b"text/javascript; charset=utf-8",
          "css": b"text/css; charset=utf-8", "svg": b"image/svg+xml"}
_SECURITY = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class WebPages:
    def __init__(self):
        self.files: dict[str, tuple[bytes, bytes, bytes]] = {}  # name -> (body, content type, etag)
        for entry in resources.files(__package__).joinpath("static").iterdir():
            body = entry.read_bytes()
            kind = entry.name.rsplit(".", 1)[-1]
            etag = b'"' + hashlib.sha256(body).hexdigest()[:16].encode() + b'"'
            self.files[entry.name] = (body, _TYPES.get(kind, b"application/octet-stream"), etag)

    async def page(self, ex: Exchange) -> None:
        await self._send(ex, PAGES[ex.path])

    async def asset(self, ex: Exchange) -> None:
        name = ex.path[len(STATIC_PATH):]
        if ex.method != "GET" or name not in self.files:
            raise NotFound(f"no file at {ex.path}")
        await self._send(ex, name)

    async def _send(self, ex: Exchange, name: str) -> None:
        body, content_type, etag = self.files[name]
        headers = [*_SECURITY, (b"etag", etag), (b"cache-control", b"no-cache")]
        if ex.header(b"if-none-match") == etag:
            await ex.start(304, headers)
            await ex.body(b"")
            return
        await ex.respond(200, body, content_type, headers=headers)
