"""Prometheus metrics at `/metrics`, built with prometheus-client.

Per-request metrics are updated by the recorder's thread from finished requests, so a request pays nothing
for them. Gauges of the node's state (in flight, queued, deployments, retries) are read when Prometheus
scrapes. Labels carry model names, surfaces, providers and key ids: never a key or a credential.
"""

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from llmrelay.observability.recorder import RequestRecord

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
MAX_MODEL_LABELS = 500  # past this many distinct models, further names count as "other"
disable_created_metrics()  # the *_created series only double what Prometheus already knows

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self, state):
        """`state` is the node: its admission, balancer, retrier, local models and usage writer."""
        self.registry = CollectorRegistry()
        self.requests = Counter("llmrelay_requests", "Requests by surface, model and status.",
                                ("surface", "model", "status"), registry=self.registry)
        self.duration = Histogram("llmrelay_request_duration_seconds", "Whole request time, as the node saw it.",
                                  ("surface", "model"), buckets=_SECONDS, registry=self.registry)
        self.ttft = Histogram("llmrelay_time_to_first_token_seconds",
                              "Time until the first byte of the answer's body went to the client.",
                              ("surface", "model"), buckets=_SECONDS, registry=self.registry)
        self.upstream = Histogram("llmrelay_upstream_duration_seconds",
                                  "From the attempt that answered to the end of its answer.",
                                  ("provider", "deployment"), buckets=_SECONDS, registry=self.registry)
        self.tokens = Counter("llmrelay_tokens", "Tokens in (prompt) and out (completion) by model.",
                              ("model", "direction"), registry=self.registry)
        self.key_tokens = Counter("llmrelay_key_tokens", "Tokens in and out by API key id.",
                                  ("key", "direction"), registry=self.registry)
        self.registry.register(_StateCollector(state))
        self._models: set[str] = set()

    def __call__(self, records: list[RequestRecord], dropped: int) -> None:
        """A recorder consumer."""
        for r in records:
            if r.surface is None:
                continue
            model = self._model_label(r)
            self.requests.labels(r.surface, model, str(r.status)).inc()
            self.duration.labels(r.surface, model).observe(r.duration_ms / 1000)
            if r.ttft_ms is not None and r.status < 400:
                self.ttft.labels(r.surface, model).observe(r.ttft_ms / 1000)
            if r.upstream_ms is not None and r.deployment:
                self.upstream.labels(r.provider or "", r.deployment).observe(r.upstream_ms / 1000)
            for direction, count in (("in", r.prompt_tokens), ("out", r.completion_tokens)):
                if count:
                    self.tokens.labels(model, direction).inc(count)
                    if r.key_id:
                        self.key_tokens.labels(r.key_id, direction).inc(count)

    def _model_label(self, r: RequestRecord) -> str:
        model = r.model or ""
        if model in self._models:
            return model
        # Clients choose model names: only names that got an answer, and not too many, become labels.
        if r.status < 400 and len(self._models) < MAX_MODEL_LABELS:
            self._models.add(model)
            return model
        return "other"

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector:
    def __init__(self, state):
        self.state = state

    def collect(self):
        state = self.state
        admission = state.admission
        yield _gauge("llmrelay_requests_in_flight", "Requests the node is answering now.", admission.in_flight)
        yield _gauge("llmrelay_queue_depth", "Requests waiting for a slot at the node's capacity.",
                     len(admission.waiters))
        retrier = state.gateway.retrier
        yield _counter("llmrelay_retries", "Attempts repeated after a retryable failure.", retrier.retries_total)
        yield _counter("llmrelay_fallbacks", "Fallback models tried.", retrier.fallbacks_total)
        in_flight = GaugeMetricFamily("llmrelay_deployment_in_flight", "Requests in flight per deployment.",
                                      labels=("provider", "deployment"))
        healthy = GaugeMetricFamily("llmrelay_deployment_healthy", "1 when in rotation, 0 while cooling down.",
                                    labels=("provider", "deployment"))
        cooldowns = CounterMetricFamily("llmrelay_cooldowns", "Times a deployment was taken out of rotation.",
                                        labels=("provider", "deployment"))
        for health, cooling in state.gateway.balancer.states():
            labels = (health.deployment.provider, health.deployment.label)
            in_flight.add_metric(labels, health.in_flight)
            healthy.add_metric(labels, 0 if cooling else 1)
            cooldowns.add_metric(labels, health.cooldowns)
        yield in_flight
        yield healthy
        yield cooldowns
        usage = state.usage
        if usage is not None:
            yield _gauge("llmrelay_usage_records_pending", "Usage records waiting to be written.", usage.pending)
            yield _counter("llmrelay_usage_records_written", "Usage records written to the database.",
                           usage.written)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)
