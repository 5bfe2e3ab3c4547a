"""Metrics and logs of a service: Prometheus metrics at `/metrics` and JSON-line request logs.

Every app owns a :class:`ServiceMetrics` (its own `prometheus_client` registry, so several apps
in one process never share counters):

- `verticals_requests_total{route, method, status}` and
  `verticals_request_duration_seconds{route, method}`: every HTTP request, by route template;
- `verticals_batch_size` and `verticals_queue_seconds`: the inference engine's batches and how
  long items waited for one;
- `verticals_<name>` gauges read from the runtime's `gauges()` at each scrape (live sessions,
  stored items, catalogue size, ...).

`VERTICALS_LOG_FORMAT=json` writes one JSON object per log record, and one per request
(`event: "request"`, method, route, status, milliseconds).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger("verticals.access")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
QUEUE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class ServiceMetrics:
    """The Prometheus metrics of one app; `gauges` is called at each scrape."""

    def __init__(self, gauges: Callable[[], dict[str, float]] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "verticals_requests", "HTTP requests", ("route", "method", "status"),
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "verticals_request_duration_seconds", "HTTP request latency", ("route", "method"),
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.batch_size = Histogram(
            "verticals_batch_size", "Items per inference batch", buckets=BATCH_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.queue_seconds = Histogram(
            "verticals_queue_seconds", "Time an item waited for its batch", buckets=QUEUE_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.gauges = gauges
        self.registry.register(_GaugeCollector(self))

    def observe_batch(self, size: int, waits: list[float]) -> None:
        """Called by the engine for each batch: its size and each item's time in the queue."""
        self.batch_size.observe(size)
        for wait in waits:
            self.queue_seconds.observe(wait)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)


class _GaugeCollector:
    """Reads the runtime's gauges at scrape time (a failing read is logged, never raised)."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def describe(self):
        return []

    def collect(self):
        if self.metrics.gauges is None:
            return
        try:
            values = self.metrics.gauges()
        except Exception:  # a scrape must not fail because a store is busy or gone
            logging.getLogger(__name__).exception("reading gauges failed")
            return
        for name, value in sorted(values.items()):
            yield GaugeMetricFamily(f"verticals_{name}", name.replace("_", " "), value=value)


class MetricsMiddleware:
    """ASGI middleware: counts and times every request by route template (and logs it when
    `log_requests`, for JSON logs)."""

    def __init__(
        self,
        app,
        metrics: ServiceMetrics,
        routes: Callable[[], list[str]],
        log_requests: bool = False,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes  # the app's path templates, e.g. `/v1/x/items/{item_id}`
        self.log_requests = log_requests
        self._patterns: list[tuple[re.Pattern, str]] | None = None

    def route_of(self, path: str) -> str:
        """The template a path matches (bounded label values), or `unmatched`."""
        if self._patterns is None:
            from starlette.routing import compile_path

            try:
                templates = self.routes()
            except Exception:  # metrics must never fail a request
                logging.getLogger(__name__).exception("route templates unavailable")
                templates = []
            self._patterns = [(compile_path(t)[0], t) for t in templates]
        return next((t for pattern, t in self._patterns if pattern.match(path)), "unmatched")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def tracking_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            seconds = time.perf_counter() - started
            route = self.route_of(scope["path"])
            self.metrics.observe_request(route, scope["method"], status, seconds)
            if self.log_requests:  # uvicorn writes its own access line in text mode
                _log_request(scope["method"], route, status, seconds)


def _log_request(method: str, route: str, status: int, seconds: float) -> None:
    fields = {"method": method, "route": route, "status": status, "ms": round(seconds * 1000, 2)}
    log.info(
        "%s %s %d %.1f ms",
        method,
        route,
        status,
        seconds * 1000,
        extra={"event": "request", **fields},
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and any `extra` fields."""

    _STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: v for k, v in record.__dict__.items() if k not in self._STANDARD})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def setup_logging(level: int = logging.INFO, fmt: str = "text") -> None:
    """Configures the root logger: `text` lines or `json` objects, one per record."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("faiss.loader").setLevel(max(level, logging.WARNING))
