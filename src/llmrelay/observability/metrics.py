"""Prometheus metrics at `/metrics`, exposed with prometheus-client.

Per-request series are counted by the recorder's thread from finished requests, so a request pays nothing
for them, in plain dicts under one lock per batch (prometheus-client's labelled metrics cost more per request
than the proxy step itself; bench/README.md). They become metric families when Prometheus scrapes, with
gauges of the node's state (in flight, queued, deployments, retries). Labels carry model names, surfaces,
providers and key ids: never a key or a credential.
"""

import threading
from bisect import bisect_left

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.utils import floatToGoString

from llmrelay.observability.recorder import RequestRecord

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
MAX_MODEL_LABELS = 500  # past this many distinct models, further names count as "other"

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_BOUNDS = [floatToGoString(bound) for bound in _SECONDS] + ["+Inf"]


class Histogram:
    """Observations by label values: a count per bucket (not cumulative) and their sum."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]):
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self.series: dict[tuple, list] = {}  # label values -> [counts per bucket..., sum]

    def observe(self, labels: tuple, seconds: float) -> None:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = [0] * (len(_BOUNDS) + 1)
        series[bisect_left(_SECONDS, seconds)] += 1
        series[-1] += seconds

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, series in self.series.items():
            cumulative, buckets = 0, []
            for bound, count in zip(_BOUNDS, series):
                cumulative += count
                buckets.append((bound, cumulative))
            family.add_metric(labels, buckets, sum_value=series[-1])
        return family


class Metrics:
    def __init__(self, admission, retrier, balancer, usage):
        """The node's load, retries and deployments' health are read from `admission`, `retrier` and `balancer`
        when scraped; `usage`: () -> the usage writer, None while there is none."""
        self.registry = CollectorRegistry()
        self._lock = threading.Lock()
        self.requests: dict[tuple, int] = {}  # (surface, model, status) -> count
        self.tokens: dict[tuple, int] = {}  # (model, direction) -> tokens
        self.key_tokens: dict[tuple, int] = {}  # (key id, direction) -> tokens
        self.duration = Histogram("llmrelay_request_duration_seconds", "Whole request time, as the node saw it.",
                                  ("surface", "model"))
        self.ttft = Histogram("llmrelay_time_to_first_token_seconds",
                              "Time until the first byte of the answer's body went to the client.",
                              ("surface", "model"))
        self.upstream = Histogram("llmrelay_upstream_duration_seconds",
                                  "From the attempt that answered to the end of its answer.",
                                  ("provider", "deployment"))
        self.registry.register(_RequestCollector(self))
        self.registry.register(_StateCollector(admission, retrier, balancer, usage))
        # What every Python exporter shows: the process's memory, CPU and open files, and the collector's work.
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self._models: set[str] = set()

    def __call__(self, records: list[RequestRecord], dropped: int) -> None:
        """A recorder consumer."""
        requests, tokens, key_tokens = self.requests, self.tokens, self.key_tokens
        with self._lock:
            for r in records:
                if r.surface is None:
                    continue
                model = self._model_label(r)
                labels = (r.surface, model)
                counted = (r.surface, model, str(r.status))
                requests[counted] = requests.get(counted, 0) + 1
                self.duration.observe(labels, r.duration_ms / 1000)
                if r.ttft_ms is not None and r.status < 400:
                    self.ttft.observe(labels, r.ttft_ms / 1000)
                if r.upstream_ms is not None and r.deployment:
                    self.upstream.observe((r.provider or "", r.deployment), r.upstream_ms / 1000)
                for direction, count in (("in", r.prompt_tokens), ("out", r.completion_tokens)):
                    if count:
                        tokens[model, direction] = tokens.get((model, direction), 0) + count
                        if r.key_id:
                            key_tokens[r.key_id, direction] = key_tokens.get((r.key_id, direction), 0) + count

    def _model_label(self, r: RequestRecord) -> str:
        model = r.model or ""
        if model in self._models:
            return model
        # Clients choose model names: only names that got an answer, and not too many, become labels.
        if r.status < 400 and len(self._models) < MAX_MODEL_LABELS:
            self._models.add(model)
            return model
        return "other"

    def families(self):
        """The per-request series as metric families (a consistent copy, taken under the lock)."""
        with self._lock:
            families = [_counters("llmrelay_requests", "Requests by surface, model and status.",
                                  ("surface", "model", "status"), self.requests),
                        self.duration.family(), self.ttft.family(), self.upstream.family(),
                        _counters("llmrelay_tokens", "Tokens in (prompt) and out (completion) by model.",
                                  ("model", "direction"), self.tokens),
                        _counters("llmrelay_key_tokens", "Tokens in and out by API key id.", ("key", "direction"),
                                  self.key_tokens)]
        return families

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _counters(name: str, documentation: str, labels: tuple[str, ...], counts: dict) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for values, count in counts.items():
        family.add_metric(values, count)
    return family


class _RequestCollector:
    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def collect(self):
        yield from self.metrics.families()


class _StateCollector:
    def __init__(self, admission, retrier, balancer, usage):
        self.admission = admission
        self.retrier = retrier
        self.balancer = balancer
        self.usage = usage

    def collect(self):
        admission = self.admission
        yield _gauge("llmrelay_requests_in_flight", "Requests the node is answering now.", admission.in_flight)
        yield _gauge("llmrelay_queue_depth", "Requests waiting for a slot at the node's capacity.",
                     len(admission.waiters))
        retrier = self.retrier
        yield _counter("llmrelay_retries", "Attempts repeated after a retryable failure.", retrier.retries_total)
        yield _counter("llmrelay_fallbacks", "Fallback models tried.", retrier.fallbacks_total)
        in_flight = GaugeMetricFamily("llmrelay_deployment_in_flight", "Requests in flight per deployment.",
                                      labels=("provider", "deployment"))
        healthy = GaugeMetricFamily("llmrelay_deployment_healthy", "1 when in rotation, 0 while cooling down.",
                                    labels=("provider", "deployment"))
        cooldowns = CounterMetricFamily("llmrelay_cooldowns", "Times a deployment was taken out of rotation.",
                                        labels=("provider", "deployment"))
        # Health is kept per model, but environment routes are labelled by upstream only (client-chosen names
        # must not grow the metrics): one sample per label, in rotation while any of its models is.
        by_label: dict[tuple[str, str], list] = {}
        for health, cooling in self.balancer.states():
            labels = (health.deployment.provider, health.deployment.label)
            known = by_label.get(labels)
            if known is None:
                by_label[labels] = [health.in_flight, 0 if cooling else 1, health.cooldowns]
            else:
                known[0] += health.in_flight
                known[1] = max(known[1], 0 if cooling else 1)
                known[2] += health.cooldowns
        for labels, (busy, up, cooled) in by_label.items():
            in_flight.add_metric(labels, busy)
            healthy.add_metric(labels, up)
            cooldowns.add_metric(labels, cooled)
        yield in_flight
        yield healthy
        yield cooldowns
        usage = self.usage()
        if usage is not None:
            yield _gauge("llmrelay_usage_records_pending", "Usage records waiting to be written.", usage.pending)
            yield _counter("llmrelay_usage_records_written", "Usage records written to the database.",
                           usage.written)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)
