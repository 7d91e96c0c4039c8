"""Runs the app under uvicorn (httptools parser, uvloop event loop), with the start-up banner."""

import functools
import ipaddress
import logging
import signal
import sys

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from llmrelay.observability.log_format import configure_logging
from llmrelay.routing.models import ModelCatalog
from llmrelay.server_protocol import HttpServerProtocol, ServerLimits
from llmrelay.settings import Settings
from llmrelay.sockets import workers_listener

log = logging.getLogger("llmrelay")


class OpenToTheNetwork(Exception):
    """Refusing to serve every address without keys."""


def check_exposure(settings: Settings) -> None:
    """A node without a master key answers anyone who can reach it: fine on loopback, refused elsewhere
    unless the operator says so."""
    if settings.master_key is None and not settings.allow_open and not is_loopback(settings.host):
        raise OpenToTheNetwork(
            f"refusing to listen on {settings.host} without API keys: anyone who can reach it could use your "
            "models and provider keys. Set LLMRELAY_MASTER_KEY (then create keys with `llmrelay keys create`), "
            "bind to 127.0.0.1, or pass --allow-open if a proxy in front of the node checks who comes in")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def server_limits(settings: Settings) -> ServerLimits:
    return ServerLimits(header_timeout=settings.header_timeout, max_header_bytes=settings.max_header_bytes,
                        body_timeout=settings.body_timeout, max_body_bytes=settings.max_body_bytes,
                        write_timeout=settings.write_timeout, max_buffered_bytes=settings.max_buffered_bytes)


def run(settings: Settings) -> None:
    configure_logging(settings.log_format)
    # uvicorn drains on SIGTERM/SIGINT, then raises the signal again against the handler it found. Finding
    # this one, the process ends with status 0 after a clean drain instead of dying by the signal.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _drained)
    for line in banner(settings):
        log.info("%s", line)
    config = uvicorn.Config(
        "llmrelay.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http=functools.partial(HttpServerProtocol, limits=server_limits(settings)),
        timeout_graceful_shutdown=settings.drain_seconds,  # in-flight answers may finish, up to this long
        lifespan="on",
        access_log=False,
        server_header=False,
        proxy_headers=False,  # X-Forwarded-* from clients is not trusted: the node may face them directly
        log_config=None,  # keep the handlers configure_logging installed
    )
    if config.workers > 1:
        # What uvicorn.run does, but with a listening socket of each worker's own (see workers_listener).
        try:
            listener = workers_listener(config.host, config.port)
        except OSError as exc:
            log.error("cannot listen on %s:%d: %s", config.host, config.port, exc)
            sys.exit(STARTUP_FAILURE)
        Multiprocess(config, sockets=[listener]).run()
        return
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _drained(signum, frame) -> None:
    """Reached only after uvicorn's own handler has drained and shut the node down."""


def banner(settings: Settings) -> list[str]:
    lines = [f"llmrelay on http://{settings.host}:{settings.port} ({settings.workers} worker(s))"]
    if settings.master_key is not None:
        lines.append("API keys required; admin API at /admin (master key)")
    elif settings.allow_open and not is_loopback(settings.host):
        lines.append(f"open to anyone who reaches {settings.host}: --allow-open is set and there is no master key")
    if settings.workers > 1 and settings.redis_url is None:
        lines.append("rate limits are counted per worker: set LLMRELAY_REDIS_URL to count them across workers")
    catalog = ModelCatalog(settings)
    for upstream in catalog.upstreams:
        lines.append(f"upstream {upstream.name}: {upstream.display_url}")
    for name in catalog.configured:
        lines.append(f"model {name} (llmrelay.yaml)")
    how = ("set LLM_CHAT_URL (e.g. http://localhost:11434 for Ollama), OPENAI_API_KEY or ANTHROPIC_API_KEY, "
           "in the environment or in .env")
    if catalog.embedded is not None:
        model_file = catalog.embedded.upstream.chat_url.removeprefix("local:")
        if catalog.nothing_configured:
            lines.append(f"serving the embedded model smollm2 (SmolLM2-135M-Instruct, {model_file}) for every "
                         f"request; to use Ollama or a provider instead, {how}")
        else:
            lines.append(f"embedded model smollm2 (alias local) available: {model_file}")
    elif catalog.nothing_configured:
        lines.append(f"no upstream configured and the embedded model is not installed: {how}")
    return lines
