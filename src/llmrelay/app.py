"""Builds the node's ASGI app. The lifespan opens the upstream sessions and the access log, and closes them."""

import asyncio
import logging

from llmrelay import __version__
from llmrelay.asgi import ClientGone, DisconnectWatch, Exchange, Receive, Scope, Send
from llmrelay.core.errors import MethodNotAllowed, NotFound, RelayError
from llmrelay.observability.access_log import AccessLog
from llmrelay.providers.http_client import UpstreamClient
from llmrelay.routing.admission import Admission
from llmrelay.routing.gateway import Gateway
from llmrelay.routing.models import ModelCatalog
from llmrelay.routing.passthrough import PassthroughRoutes
from llmrelay.server_protocol import GuardedHttpToolsProtocol
from llmrelay.settings import Settings, load_settings
from llmrelay.surfaces.anthropic import AnthropicSurface
from llmrelay.surfaces.ollama import OllamaGenerateSurface, OllamaSurface
from llmrelay.surfaces.openai import OpenAISurface
from llmrelay.surfaces.openapi import openapi_document
from llmrelay.surfaces.passthrough import PassthroughSurface

log = logging.getLogger("llmrelay")

CLIENT_CLOSED = 499  # nginx's convention for "the client went away before the answer"


class RelayApp:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.catalog = ModelCatalog(settings)
        self.routes = PassthroughRoutes(self.catalog)
        self.client = UpstreamClient(settings.connect_timeout, settings.first_byte_timeout, settings.idle_timeout,
                                     settings.total_timeout)
        self.gateway = Gateway(self.catalog, self.client, settings)
        openai = OpenAISurface(self.gateway, settings.max_body_bytes)
        anthropic = AnthropicSurface(self.gateway, settings.max_body_bytes)
        ollama = OllamaSurface(self.gateway, settings.max_body_bytes)
        generate = OllamaGenerateSurface(self.gateway, settings.max_body_bytes)
        # The seed's endpoint speaks Ollama's format to the embedded model, which has no HTTP API of its own.
        self.passthrough = PassthroughSurface(self.routes, self.client, self.gateway.retrier, settings.max_body_bytes,
                                              ollama.handle_body)
        self.access_log: AccessLog | None = None
        self.disconnects = DisconnectWatch()
        self.prober: asyncio.Task | None = None
        self.admission = Admission("the node", settings.max_in_flight, settings.queue_size, settings.queue_timeout)
        seed_chat = self.passthrough.chat
        self.handlers = {
            # The seed's pass-through endpoint, and the path the seed's text names.
            "/api/v1/chat": {"POST": seed_chat},
            "/v1/api/chat": {"POST": seed_chat},
            "/api/v1/chat/cf": {"POST": self.passthrough.cloudflare},
            "/api/v1/llm/models": {"GET": openai.models},
            # OpenAI
            "/v1/chat/completions": {"POST": openai.handle},
            "/v1/models": {"GET": openai.models},
            "/v1/embeddings": {"POST": openai.embeddings},
            # Anthropic
            "/v1/messages": {"POST": anthropic.handle},
            "/v1/messages/count_tokens": {"POST": anthropic.count_tokens},
            # Ollama
            "/api/chat": {"POST": ollama.handle},
            "/api/generate": {"POST": generate.handle},
            "/api/tags": {"GET": ollama.tags},
            "/api/show": {"POST": ollama.show},
            "/api/version": {"GET": ollama.version},
            "/api/embed": {"POST": ollama.embed},
            # The node
            "/health": {"GET": self.health},
            "/ready": {"GET": self.ready},
            "/openapi.json": {"GET": self.openapi},
        }
        # Endpoints that hold an upstream or the embedded model: these count against the node's capacity.
        self.admitted_paths = {path for path, methods in self.handlers.items() if "POST" in methods}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.handle(Exchange(scope, receive, send, self.disconnects))
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def handle(self, ex: Exchange) -> None:
        try:
            await self.dispatch(ex)
        except RelayError as error:
            if ex.status:  # the answer had started; nothing more can be said on this response
                log.warning("request %s failed after its answer started: %s", ex.request_id, error.message)
            else:
                await ex.respond_error(error)
        except ClientGone:
            ex.status = CLIENT_CLOSED
        except asyncio.CancelledError:
            if not ex.client_gone:
                raise  # the server is shutting down
            asyncio.current_task().uncancel()
            ex.status = ex.status or CLIENT_CLOSED
            ex.error_type = "client_closed"
        except Exception:
            log.exception("request %s failed", ex.request_id)
            if not ex.status:
                await ex.respond_error(RelayError("the node failed on this request; see its log for details"))
        finally:
            ex.stop_watching()
            for lease in ex.leases:
                lease.release()
            if self.access_log is not None:
                self.access_log.record(ex)

    async def dispatch(self, ex: Exchange) -> None:
        methods = self.handlers.get(ex.path)
        if methods is None:
            raise NotFound(f"no endpoint at {ex.path}; GET /openapi.json lists the node's endpoints")
        handler = methods.get(ex.method)
        if handler is None:
            allowed = ", ".join(methods)
            raise MethodNotAllowed(f"{ex.path} accepts {allowed}, not {ex.method}", headers={"Allow": allowed})
        if ex.path not in self.admitted_paths:
            await handler(ex)
            return
        await self.admission.enter()
        try:
            await handler(ex)
        finally:
            self.admission.leave()

    async def health(self, ex: Exchange) -> None:
        await ex.respond_json(200, {"status": "ok", "version": __version__})

    async def ready(self, ex: Exchange) -> None:
        upstreams = self.catalog.upstreams
        reports = await asyncio.gather(*(self.client.probe(u, self.settings.ready_timeout) for u in upstreams))
        local = self.gateway.local_status()
        ready = any(report["ready"] for report in reports) or any(model["loaded"] for model in local)
        payload = {"status": "ready" if ready else "not_ready", "upstreams": reports,
                   "deployments": self.gateway.balancer.report()}
        if local:
            payload["local_models"] = local
        if not upstreams and not local:
            payload["message"] = "no upstream is configured: set LLM_CHAT_URL, OPENAI_API_KEY or ANTHROPIC_API_KEY"
        await ex.respond_json(200 if ready else 503, payload)

    async def openapi(self, ex: Exchange) -> None:
        await ex.respond_json(200, openapi_document(__version__))

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # noqa: BLE001 - reported to the server, which stops
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        self.access_log = AccessLog(self.settings.log_format)
        await self.client.open(self.catalog.upstreams)
        await self.gateway.load_embedded()
        if self.settings.probe_interval:
            self.prober = asyncio.get_running_loop().create_task(
                self.gateway.probe_forever(self.settings.probe_interval, self.settings.ready_timeout))

    async def shutdown(self) -> None:
        if self.prober is not None:
            self.prober.cancel()
        self.disconnects.close()
        await self.client.close()
        if self.access_log is not None:
            self.access_log.close()


def create_app(settings: Settings | None = None) -> RelayApp:
    """The ASGI app; uvicorn's workers call this with no arguments and read the settings themselves."""
    settings = settings or load_settings()
    GuardedHttpToolsProtocol.header_timeout = settings.header_timeout
    GuardedHttpToolsProtocol.max_header_bytes = settings.max_header_bytes
    Exchange.body_timeout = settings.body_timeout
    return RelayApp(settings)
