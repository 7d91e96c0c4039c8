"""Builds the node's ASGI app. The lifespan opens the upstream sessions, the database and the recorder,
and closes them."""

import asyncio
import logging
from collections.abc import Awaitable
from urllib.parse import urlsplit

from llmrelay import __version__
from llmrelay.access.browsers import BrowserGuard
from llmrelay.access.guard import AccessGuard, model_budgets, presented_key
from llmrelay.access.keys import KeyStore
from llmrelay.access.limits import open_limits
from llmrelay.access.model_gate import ModelGate
from llmrelay.asgi import (
    ClientGone,
    DisconnectWatch,
    Exchange,
    ForwardTo,
    Receive,
    Scope,
    Send,
    error_body,
)
from llmrelay.cluster.membership import Membership, join_cluster
from llmrelay.cluster.shared_state import CooldownOutbox
from llmrelay.core.errors import MethodNotAllowed, NotFound, RelayError
from llmrelay.core.gc_tuning import tune_for_serving
from llmrelay.endpoints import Access, Api, Endpoint, Endpoints
from llmrelay.observability.access_log import AccessLog
from llmrelay.observability.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from llmrelay.observability.metrics import Metrics
from llmrelay.observability.recorder import Recorder, RequestRecord
from llmrelay.observability.timeline import Timeline
from llmrelay.providers.http_client import UpstreamClient
from llmrelay.providers.probes import ProbeCache
from llmrelay.routing.admission import Admission
from llmrelay.routing.balancer import Balancer
from llmrelay.routing.gateway import Gateway
from llmrelay.routing.models import ModelCatalog
from llmrelay.routing.passthrough import PassthroughRoutes
from llmrelay.routing.retry import Retrier
from llmrelay.settings import Settings, load_settings
from llmrelay.storage.database import describe_error, open_database
from llmrelay.surfaces.admin import KEYS_PATH, AdminSurface
from llmrelay.surfaces.anthropic import AnthropicSurface
from llmrelay.surfaces.ollama import OllamaChatSurface, OllamaGenerateSurface, OllamaModels
from llmrelay.surfaces.openai import OpenAISurface
from llmrelay.surfaces.openapi import (
    ANTHROPIC_MESSAGES,
    EMBED,
    MODEL_ONLY,
    NEW_KEY,
    OLLAMA_CHAT,
    OLLAMA_GENERATE,
    OPENAI_CHAT,
    SEED_CHAT,
    openapi_document,
)
from llmrelay.surfaces.passthrough import PassthroughSurface
from llmrelay.usage.writer import UsageWriter
from llmrelay.web import PAGES, STATIC_PATH, WebPages

log = logging.getLogger("llmrelay")

CLIENT_CLOSED = 499  # nginx's convention for "the client went away before the answer"

class RelayApp:
    def __init__(self, settings: Settings):
        """The composition root: every component of the node, built top to bottom, each given what it uses."""
        self.settings = settings
        redis_url = settings.redis_url and settings.redis_url.get_secret_value()
        clustered = bool(redis_url and settings.cluster_secret)
        # Where requests go: models, upstreams, deployments' health, retries.
        self.catalog = ModelCatalog(settings)
        self.routes = PassthroughRoutes(self.catalog)
        self.client = UpstreamClient(settings.connect_timeout, settings.first_byte_timeout, settings.idle_timeout,
                                     settings.total_timeout, settings.max_connections_per_host)
        cooldowns = CooldownOutbox() if clustered else None
        balancer = Balancer(settings, cooldowns.cooldown_began if cooldowns else None)
        retrier = Retrier(self.catalog, balancer, settings)
        self.gateway = Gateway(self.catalog, self.client, balancer, retrier, settings)
        self.probes = ProbeCache(self.client, settings.ready_timeout)
        self.admission = Admission("the node", settings.max_in_flight, settings.queue_size, settings.queue_timeout)
        # Who may ask: keys, limits, browsers.
        self.database = open_database(settings.database_url and settings.database_url.get_secret_value(),
                                      settings.data_dir)
        self.keys = KeyStore(self.database, settings.master_key and settings.master_key.get_secret_value())
        self.guard = AccessGuard(self.keys, open_limits(redis_url, settings.cluster_name),
                                 model_budgets(settings.models))
        # The names the node is bound to and known to its cluster under are its own.
        own_hosts = [settings.host, urlsplit(settings.node_url).hostname if settings.node_url else None]
        self.browsers = BrowserGuard(self.keys, ",".join(filter(None, [settings.allowed_hosts, *own_hosts])),
                                     settings.allowed_origins)
        # The cluster: other nodes, the keys and cooldowns they share, forwarding.
        self.cluster: Membership | None = None
        if clustered:
            self.cluster = join_cluster(
                settings, redis_url, self.keys, balancer, cooldowns,
                lambda: [d for route in self.catalog.configured.values() for d in route.deployments],
                self._own_model_names, lambda: self.admission.in_flight, self.client)
        gate = ModelGate(self.guard, self.cluster.registry if self.cluster else None)
        # The APIs the node speaks.
        openai = OpenAISurface(self.gateway, gate, settings.max_body_bytes)
        anthropic = AnthropicSurface(self.gateway, gate, settings.max_body_bytes)
        ollama = OllamaChatSurface(self.gateway, gate, settings.max_body_bytes)
        generate = OllamaGenerateSurface(self.gateway, gate, settings.max_body_bytes)
        ollama_models = OllamaModels(self.gateway, gate, settings.max_body_bytes)
        # The seed's endpoint speaks Ollama's format to the embedded model, which has no HTTP API of its own.
        self.passthrough = PassthroughSurface(self.routes, self.client, retrier, gate, settings.max_body_bytes,
                                              ollama.handle)
        admin = AdminSurface(self.keys, self.database, settings.max_body_bytes, balancer.report,
                             self.cluster.shared.publish_key if self.cluster else None)
        self.web = WebPages()
        self.endpoints = Endpoints(self._endpoints(openai, anthropic, ollama, generate, ollama_models, admin))
        # What the node sees of itself: metrics, the dashboard's timeline, usage records (opened at start).
        self.recorder: Recorder | None = None
        self.usage: UsageWriter | None = None
        self.metrics = Metrics(self.admission, retrier, balancer, lambda: self.usage)
        self.timeline = Timeline()
        self.disconnects = DisconnectWatch()
        self.background: list[asyncio.Task] = []

    async def _own_model_names(self) -> list[str]:
        return [name for name, _ in await self.gateway.own_model_names()]

    def _endpoints(self, openai: OpenAISurface, anthropic: AnthropicSurface, ollama: OllamaChatSurface,
                   generate: OllamaGenerateSurface, ollama_models: OllamaModels,
                   admin: AdminSurface) -> list[Endpoint]:
        """Every endpoint the node serves, each once."""
        seed = Api("passthrough", error_body)
        cloudflare = Api("cloudflare", error_body)
        openai_api = Api("openai", openai.error_body)
        anthropic_api = Api("anthropic", anthropic.error_body)
        ollama_api = Api("ollama", ollama.error_body)
        key, public, admin_read = Access.KEY, Access.PUBLIC, Access.ADMIN
        ndjson, sse = "application/x-ndjson", "text/event-stream"
        return [
            # The seed's pass-through endpoint, and the path the seed's text names.
            Endpoint("POST", "/api/v1/chat", self.passthrough.chat, "Forward a chat request byte for byte (the Masa "
                     "node's endpoint)", key, seed, asks_model=True, body=SEED_CHAT, streams=ndjson),
            Endpoint("POST", "/v1/api/chat", self.passthrough.chat, "Alias of /api/v1/chat", key, seed,
                     asks_model=True, body=SEED_CHAT, streams=ndjson),
            Endpoint("POST", "/api/v1/chat/cf", self.passthrough.cloudflare, "Forward to Cloudflare Workers AI "
                     "(LLM_CF_URL/<model>)", key, cloudflare, asks_model=True, body=SEED_CHAT, streams=sse),
            Endpoint("GET", "/api/v1/llm/models", openai.models, "The node's models", key),
            # OpenAI
            Endpoint("POST", "/v1/chat/completions", openai.handle, "OpenAI chat completions", key, openai_api,
                     asks_model=True, body=OPENAI_CHAT, streams=sse),
            Endpoint("GET", "/v1/models", openai.models, "OpenAI model list", key, openai_api),
            Endpoint("POST", "/v1/embeddings", openai.embeddings, "OpenAI embeddings", key, openai_api,
                     asks_model=True, body=EMBED),
            # Anthropic
            Endpoint("POST", "/v1/messages", anthropic.handle, "Anthropic messages", key, anthropic_api,
                     asks_model=True, body=ANTHROPIC_MESSAGES, streams=sse),
            Endpoint("POST", "/v1/messages/count_tokens", anthropic.count_tokens, "Anthropic token count (estimated "
                     "unless Anthropic serves the model)", key, anthropic_api, asks_model=True,
                     body=ANTHROPIC_MESSAGES),
            # Ollama
            Endpoint("POST", "/api/chat", ollama.handle, "Ollama chat", key, ollama_api, asks_model=True,
                     body=OLLAMA_CHAT, streams=ndjson),
            Endpoint("POST", "/api/generate", generate.handle, "Ollama generate", key, ollama_api, asks_model=True,
                     body=OLLAMA_GENERATE, streams=ndjson),
            Endpoint("GET", "/api/tags", ollama_models.tags, "Ollama model list", key, ollama_api),
            Endpoint("POST", "/api/show", ollama_models.show, "Ollama model details", key, ollama_api, asks_model=True,
                     body=MODEL_ONLY),
            Endpoint("GET", "/api/version", ollama_models.version, "Ollama-compatible version", key, ollama_api),
            Endpoint("POST", "/api/embed", ollama_models.embed, "Ollama embeddings", key, ollama_api, asks_model=True,
                     body=EMBED),
            # The node
            Endpoint("GET", "/health", self.health, "The process is alive", public),
            Endpoint("GET", "/ready", self.ready, "Whether an upstream is ready (503 when none is); the details "
                     "need the master key when keys are on", public),
            Endpoint("GET", "/openapi.json", self.openapi, "This document", public),
            Endpoint("GET", "/metrics", self.metrics_page, "Prometheus metrics (master key when keys are on)",
                     Access.METRICS, answers="text/plain"),
            # The admin API
            Endpoint("GET", KEYS_PATH, admin.list_keys, "API keys, without the keys themselves", Access.MASTER),
            Endpoint("POST", KEYS_PATH, admin.create_key, "Create an API key, returned this once", Access.MASTER,
                     body=NEW_KEY),
            Endpoint("DELETE", KEYS_PATH + "/{key_id}", admin.revoke_key, "Revoke an API key", Access.MASTER),
            Endpoint("POST", KEYS_PATH + "/{key_id}/revoke", admin.revoke_key, "Revoke an API key", Access.MASTER),
            Endpoint("GET", "/admin/usage", admin.usage, "Usage totals by key, model or day: ?by=model&since=7d",
                     admin_read),
            Endpoint("GET", "/admin/usage/records", admin.usage_records, "Recent usage records: "
                     "?since=1d&limit=100&errors=1", admin_read),
            Endpoint("GET", "/admin/deployments", admin.deployments_report, "Every deployment's state and load",
                     admin_read),
            Endpoint("GET", "/admin/stats", self.stats, "Requests and latency per second, and the load now",
                     admin_read),
            Endpoint("GET", "/admin/cluster", self.cluster_report, "The cluster's nodes", admin_read),
            Endpoint("GET", "/admin/usage/cluster", self.cluster_usage, "Usage totals of the whole cluster: "
                     "?since=7d", admin_read),
            # The chat page and the dashboard, and their files
            *(Endpoint("GET", path, self.web.page, f"The {name.removesuffix('.html')} page", public,
                       answers="text/html") for path, name in PAGES.items()),
            Endpoint("GET", STATIC_PATH + "{name}", self.web.asset, "A file of the pages", public,
                     answers="text/plain"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One request: dispatched, its errors answered in the client's API shape, recorded. (In this method
        rather than one it calls, and `dispatch` a plain function: coroutines fewer on every request's way.)"""
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.lifespan(receive, send)
            return
        ex = Exchange(scope, receive, send, self.disconnects, self.settings.body_timeout)
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
                endpoint = ex.endpoint
                asked = endpoint is not None and endpoint.asks_model and not ex.forwarded
                self.recorder.record(RequestRecord.of(ex, endpoint.api.name if asked else None))
            if ex.prompt_tokens or ex.completion_tokens:
                await self.guard.settle(ex)

    def dispatch(self, ex: Exchange) -> Awaitable[None]:
        """The handler's coroutine for this request, once the checks that wait for nothing have passed (they
        raise the request's error)."""
        path = ex.path
        methods = self.endpoints.exact.get(path) or self.endpoints.methods_at(path)
        endpoint = methods.get(ex.method) if methods is not None else None
        shaped = endpoint or (next(iter(methods.values())) if methods else None)
        if shaped is not None and shaped.api is not None:
            ex.error_body = shaped.api.error_body  # errors in the client's API's shape
        ex.cors = self.browsers.check(ex)
        if ex.method == "OPTIONS" and self.browsers.is_preflight(ex):
            return self.browsers.preflight(ex)
        if endpoint is None:
            if methods is None:
                raise NotFound(f"no endpoint at {path}; GET /openapi.json lists the node's endpoints")
            allowed = ", ".join(methods)
            raise MethodNotAllowed(f"{path} accepts {allowed}, not {ex.method}", headers={"Allow": allowed})
        ex.endpoint = endpoint
        if endpoint.asks_model:
            if self.cluster is not None and self.cluster.forwarder.from_peer(ex):
                ex.forwarded = True  # its first node checked the key and counted the limits
            else:
                self.guard.authenticate(ex)
            if not self.admission.try_enter():
                return self._after_queueing(ex, endpoint.handler)
            ex.admitted = True  # left when the request is done (__call__)
            return endpoint.handler(ex)
        access = endpoint.access
        if access is Access.KEY:
            self.guard.authenticate(ex)
        elif access is Access.MASTER:
            self.guard.require_master(ex)
        elif access is Access.ADMIN:
            if self.keys.required:
                self.guard.require_master(ex)
        elif access is Access.METRICS:
            if self.keys.required and not self.settings.public_metrics:
                self.guard.require_master(ex)
        return endpoint.handler(ex)

    async def _after_queueing(self, ex: Exchange, handler) -> None:
        """A model request that waits for a free slot of the node's capacity first."""
        await self.admission.enter()
        ex.admitted = True
        await handler(ex)

    async def health(self, ex: Exchange) -> None:
        await ex.respond_json(200, {"status": "ok", "version": __version__})

    async def ready(self, ex: Exchange) -> None:
        """Ready when an upstream answers or a local model is loaded. On a keyed node only the master key sees
        the details (upstream URLs, the database, the cluster's peers); anyone else gets the status alone."""
        upstreams = self.catalog.upstreams
        reports = await self.probes.reports(upstreams)
        local = self.gateway.local_status()
        ready = any(report["ready"] for report in reports) or any(model["loaded"] for model in local)
        status = 200 if ready else 503
        if self.keys.required and not self.keys.is_master(presented_key(ex.scope["headers"])):
            await ex.respond_json(status, {"status": "ready" if ready else "not_ready"})
            return
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
        await ex.respond_json(status, payload)

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
        await ex.respond_json(200, openapi_document(__version__, self.endpoints.all))

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
    return RelayApp(settings or load_settings())
