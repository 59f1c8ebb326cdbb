"""Structured JSON logs with a correlation id, Prometheus metrics, and OpenTelemetry tracing hooks."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
import uuid

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="-")
# The address of the client a request or stream serves (for the audit trail).
client_address: contextvars.ContextVar[str] = contextvars.ContextVar("client_address", default="-")
CORRELATION_HEADER = "X-Correlation-ID"

REGISTRY = CollectorRegistry(auto_describe=True)
HTTP_REQUESTS = Counter(
    "univoice_http_requests_total", "HTTP requests by route and status.", ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "univoice_http_request_seconds", "HTTP request latency by route.", ["method", "route"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TRITON_LATENCY = Histogram(
    "univoice_triton_request_seconds", "Latency of calls to Triton by model and outcome.", ["model", "outcome"],
    registry=REGISTRY, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ACTIVE_SESSIONS = Gauge("univoice_active_sessions", "Streaming sessions currently open.", registry=REGISTRY)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """One JSON object per line; carries the request/session correlation id."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": correlation_id.get(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO", as_json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if as_json else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def log_event(logger: logging.Logger, message: str, level: int = logging.INFO, **fields) -> None:
    """Log with structured fields (they become JSON keys)."""
    logger.log(level, message, extra={"fields": fields})


def configure_tracing(exporter: str, endpoint: str | None, service_name: str = "univoice-gateway"):
    """Install an OpenTelemetry tracer provider; "none" (the default) installs nothing."""
    if exporter == "none":
        return None
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter == "console":
        span_exporter = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as error:
            raise RuntimeError(
                "UNIVOICE_OTEL_EXPORTER=otlp needs `pip install opentelemetry-exporter-otlp-proto-http`"
            ) from error
        span_exporter = OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(provider)
    return provider


def tracer():
    from opentelemetry import trace

    return trace.get_tracer("univoice.gateway")
