"""Builds the node's ASGI app. The lifespan opens the upstream sessions, the database and the recorder,
and closes them."""

import asyncio
import logging
from collections.abc import Awaitable

from llmrelay import __version__
from llmrelay.access.guard import AccessGuard, model_budgets
from llmrelay.access.keys import KeyStore
from llmrelay.access.limits import open_limits
from llmrelay.asgi import (
    ClientGone,
    DisconnectWatch,
    Exchange,
    ForwardTo,
    Receive,
    Scope,
    Send,
)
from llmrelay.cluster.membership import Membership, join_cluster
from llmrelay.core.errors import MethodNotAllowed, NotFound, RelayError
from llmrelay.core.gc_tuning import tune_for_serving
from llmrelay.observability.access_log import AccessLog
from llmrelay.observability.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from llmrelay.observability.metrics import Metrics
from llmrelay.observability.recorder import Recorder, RequestRecord
from llmrelay.observability.timeline import Timeline
from llmrelay.providers.http_client import UpstreamClient
from llmrelay.routing.admission import Admission
from llmrelay.routing.gateway import Gateway
from llmrelay.routing.models import ModelCatalog
from llmrelay.routing.passthrough import PassthroughRoutes
from llmrelay.server_protocol import HttpServerProtocol
from llmrelay.settings import Settings, load_settings
from llmrelay.storage.database import describe_error, open_database
from llmrelay.surfaces.admin import KEYS_PATH, AdminSurface
from llmrelay.surfaces.anthropic import AnthropicSurface
from llmrelay.surfaces.ollama import OllamaGenerateSurface, OllamaSurface
from llmrelay.surfaces.openai import OpenAISurface
from llmrelay.surfaces.openapi import openapi_document
from llmrelay.surfaces.passthrough import PassthroughSurface
from llmrelay.usage.writer import UsageWriter
from llmrelay.web import PAGES, STATIC_PATH, WebPages

log = logging.getLogger("llmrelay")

CLIENT_CLOSED = 499  # nginx's convention for "the client went away before the answer"

# Endpoints that ask a model, by the API they speak: each request to one gets a usage record, and counts
# against the node's capacity.
SURFACE_OF_PATH = {
    "/api/v1/chat": "passthrough", "/v1/api/chat": "passthrough", "/api/v1/chat/cf": "cloudflare",
    "/v1/chat/completions": "openai", "/v1/embeddings": "openai",
    "/v1/messages": "anthropic", "/v1/messages/count_tokens": "anthropic",
    "/api/chat": "ollama", "/api/generate": "ollama", "/api/show": "ollama", "/api/embed": "ollama",
}
# Open to anyone, keys or not: liveness, readiness, the API description, and the pages (whose scripts send
# the key the user gives them).
PUBLIC_PATHS = frozenset({"/health", "/ready", "/openapi.json", *PAGES})


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
                                              ollama.handle)
        self.disconnects = DisconnectWatch()
        self.background: list[asyncio.Task] = []
        self.admission = Admission("the node", settings.max_in_flight, settings.queue_size, settings.queue_timeout)
        # Keys, limits, usage and metrics.
        self.database = open_database(settings.database_url and settings.database_url.get_secret_value(),
                                      settings.data_dir)
        self.keys = KeyStore(self.database, settings.master_key and settings.master_key.get_secret_value())
        redis_url = settings.redis_url and settings.redis_url.get_secret_value()
        self.guard = AccessGuard(self.keys, open_limits(redis_url, settings.cluster_name),
                                 model_budgets(settings.models))
        Exchange.guard = self.guard
        self.cluster = join_cluster(self, redis_url)
        self.metrics = Metrics(self)
        self.timeline = Timeline()
        self.web = WebPages()
        self.recorder: Recorder | None = None
        self.usage: UsageWriter | None = None
        self.error_body_of = {path: surface.error_body for surface, paths in (
            (openai, ("/v1/chat/completions", "/v1/embeddings")),
            (anthropic, ("/v1/messages", "/v1/messages/count_tokens")),
            (ollama, ("/api/chat", "/api/generate", "/api/show", "/api/embed"))) for path in paths}
        admin = AdminSurface(self.keys, self.database, settings.max_body_bytes, self.gateway.balancer.report)
        self.admin_key_action = admin.key_action
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
            "/metrics": {"GET": self.metrics_page},
            # The admin API (master key)
            KEYS_PATH: {"GET": admin.list_keys, "POST": admin.create_key},
            "/admin/usage": {"GET": admin.usage},
            "/admin/usage/records": {"GET": admin.usage_records},
            "/admin/deployments": {"GET": admin.deployments_report},
            "/admin/stats": {"GET": self.stats},
            "/admin/cluster": {"GET": self.cluster_report},
            "/admin/usage/cluster": {"GET": self.cluster_usage},
            # The chat page and the dashboard
            **{path: {"GET": self.web.page} for path in PAGES},
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One request: dispatched, its errors answered in the client's API shape, recorded. (In this method
        rather than one it calls, and `dispatch` a plain function: coroutines fewer on every request's way.)"""
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.lifespan(receive, send)
            return
        ex = Exchange(scope, receive, send, self.disconnects)
        try:
            try:
                await self.dispatch(ex)
            except ForwardTo as target:
                await self.cluster.forwarder.forward(ex, target.node)
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
            if ex.admitted:
                self.admission.leave()
            ex.stop_watching()
            for lease in ex.leases:
                lease.release()
            if self.recorder is not None:
                # A request forwarded by another node is recorded there, once.
                self.recorder.record(RequestRecord.of(ex, None if ex.forwarded else SURFACE_OF_PATH.get(ex.path)))
            if ex.prompt_tokens or ex.completion_tokens:
                await self.guard.settle(ex)

    def dispatch(self, ex: Exchange) -> Awaitable[None]:
        """The handler's coroutine for this request, once the checks that wait for nothing have passed (they
        raise the request's error)."""
        path = ex.path
        methods = self.handlers.get(path)
        if methods is None:
            if path.startswith(KEYS_PATH + "/"):
                self.guard.require_master(ex)
                return self.admin_key_action(ex)
            if path.startswith(STATIC_PATH):
                return self.web.asset(ex)
            raise NotFound(f"no endpoint at {path}; GET /openapi.json lists the node's endpoints")
        handler = methods.get(ex.method)
        if handler is None:
            allowed = ", ".join(methods)
            raise MethodNotAllowed(f"{path} accepts {allowed}, not {ex.method}", headers={"Allow": allowed})
        if path in SURFACE_OF_PATH:
            ex.error_body = self.error_body_of.get(path, ex.error_body)  # in the client's API's shape
            if self.cluster is not None and self.cluster.forwarder.from_peer(ex):
                ex.forwarded = True  # its first node checked the key and counted the limits
            else:
                self.guard.authenticate(ex)
            if not self.admission.try_enter():
                return self._after_queueing(ex, handler)
            ex.admitted = True  # left when the request is done (__call__)
            return handler(ex)
        if path.startswith("/admin/"):
            # An open node's dashboard may read its own state; changing keys always takes the master key.
            if self.keys.required or path == KEYS_PATH:
                self.guard.require_master(ex)
        elif path == "/metrics":
            if self.keys.required and not self.settings.public_metrics:
                self.guard.require_master(ex)
        elif path not in PUBLIC_PATHS:
            self.guard.authenticate(ex)
        return handler(ex)

    async def _after_queueing(self, ex: Exchange, handler) -> None:
        """A model request that waits for a free slot of the node's capacity first."""
        await self.admission.enter()
        ex.admitted = True
        await handler(ex)

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
        if self.cluster is not None:
            payload["cluster"] = self.cluster.registry.report()
        if self.usage is not None:
            payload["usage_records"] = {"database": self.database.display, "pending": self.usage.pending,
                                        "written": self.usage.written}
        if not upstreams and not local:
            payload["message"] = "no upstream is configured: set LLM_CHAT_URL, OPENAI_API_KEY or ANTHROPIC_API_KEY"
        await ex.respond_json(200 if ready else 503, payload)

    async def metrics_page(self, ex: Exchange) -> None:
        await ex.respond(200, self.metrics.exposition(), METRICS_CONTENT_TYPE)

    async def cluster_report(self, ex: Exchange) -> None:
        await ex.respond_json(200, self._membership().registry.report())

    async def cluster_usage(self, ex: Exchange) -> None:
        await ex.respond_json(200, await self._membership().usage(ex))

    def _membership(self) -> Membership:
        if self.cluster is None:
            raise NotFound("this node is not part of a cluster: set LLMRELAY_REDIS_URL and LLMRELAY_CLUSTER_SECRET")
        return self.cluster

    async def stats(self, ex: Exchange) -> None:
        """What the dashboard charts: requests and latency per second, and the node's load now."""
        await ex.respond_json(200, {"timeline": self.timeline.snapshot(300), "in_flight": self.admission.in_flight,
                                    "queued": len(self.admission.waiters)})

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
        try:
            await asyncio.to_thread(self._open_database)
        except Exception as exc:  # noqa: BLE001 - said plainly; uvicorn then stops the node
            raise RuntimeError(f"cannot open the database {self.database.display} ({describe_error(exc)}); "
                               "check LLMRELAY_DATABASE_URL or LLMRELAY_DATA_DIR") from None
        consumers = [AccessLog(self.settings.log_format), self.metrics, self.timeline]
        if self.cluster is not None:
            consumers.append(self.cluster.usage_totals)
        if self.settings.usage_records:
            self.usage = UsageWriter(self.database)
            consumers.append(self.usage)
        self.recorder = Recorder(consumers)
        await self.client.open(self.catalog.upstreams)
        await self.gateway.load_embedded()
        loop = asyncio.get_running_loop()
        self.background.append(loop.create_task(self.keys.refresh_forever()))
        if self.cluster is not None:
            self.background.append(loop.create_task(self.cluster.registry.run_forever()))
        if self.settings.probe_interval:
            self.background.append(loop.create_task(
                self.gateway.probe_forever(self.settings.probe_interval, self.settings.ready_timeout)))
        tune_for_serving()

    def _open_database(self) -> None:
        self.database.migrate()
        self.keys.load()
        if self.keys.by_id and not self.keys.admin_enabled:
            log.warning("API keys exist in %s but LLMRELAY_MASTER_KEY is not set: keys are required, and the "
                        "admin API is off", self.database.display)

    async def shutdown(self) -> None:
        for task in self.background:
            task.cancel()
        if self.cluster is not None:
            await self.cluster.registry.leave()
        self.disconnects.close()
        await self.client.close()
        if self.recorder is not None:
            self.recorder.close()  # hands the last records to the usage writer
        if self.usage is not None:
            await asyncio.to_thread(self.usage.close)
        await self.guard.limits.close()
        self.database.close()


def create_app(settings: Settings | None = None) -> RelayApp:
    """The ASGI app; uvicorn's workers call this with no arguments and read the settings themselves."""
    settings = settings or load_settings()
    HttpServerProtocol.header_timeout = settings.header_timeout
    HttpServerProtocol.max_header_bytes = settings.max_header_bytes
    HttpServerProtocol.body_timeout = settings.body_timeout
    HttpServerProtocol.write_timeout = settings.write_timeout
    HttpServerProtocol.max_body_bytes = settings.max_body_bytes
    Exchange.body_timeout = settings.body_timeout
    return RelayApp(settings)
