"""OpenTelemetry tracing: one trace per check, exported over OTLP when an endpoint is set.

Spans: the route's span (``check`` / ``upload``; below FastAPI's own request span where the
installed FastAPI opens one) → ``download`` → ``extract`` (in process, or the Triton call, whose
gRPC metadata carries the context) → ``search`` (one child per indexer shard, with the context in
the HTTP headers) → ``align_decide`` → ``store``. Each indexer shard continues the trace: its
server span per request (``shard.search``, ``shard.add``, ...; see :func:`server_span`) is a
child of the API's ``indexer <op>`` span for that shard. With no endpoint configured spans are
still created, so trace ids reach the logs and downstream services, but nothing is exported.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager

from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanProcessor

tracer = trace.get_tracer("vdup")
_configured = False


def setup_tracing(
    service_name: str, otlp_endpoint: str = "", processor: SpanProcessor | None = None
) -> None:
    """Install the global tracer provider once per process (later calls only add ``processor``)."""
    global _configured
    provider = trace.get_tracer_provider()
    if not _configured:
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        if otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint))
            )
        trace.set_tracer_provider(provider)
        _configured = True
    if processor is not None and hasattr(provider, "add_span_processor"):
        provider.add_span_processor(processor)


def server_span(
    name: str,
    headers: Mapping[str, str],
    attributes: dict[str, str | int | float | bool] | None = None,
) -> AbstractContextManager[trace.Span]:
    """A SERVER span for one incoming request, made current: a child of the caller's span when
    ``headers`` carry W3C trace context (``traceparent``), else the root of a new trace."""
    return tracer.start_as_current_span(
        name, context=extract(headers), kind=trace.SpanKind.SERVER, attributes=attributes
    )


class TraceIdFilter(logging.Filter):
    """Adds ``trace_id`` (hex, or '-') to every log record, for the log format."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        record.trace_id = f"{ctx.trace_id:032x}" if ctx.is_valid else "-"
        return True


def install_log_trace_ids() -> None:
    handler_filter = TraceIdFilter()
    for handler in logging.getLogger().handlers:
        handler.addFilter(handler_filter)
