"""OpenTelemetry tracing: one trace per check, exported over OTLP when an endpoint is set.

Spans: the route's span (``check`` / ``upload``) → ``download`` → ``extract`` (in process, or the
Triton call, whose gRPC metadata carries the context) → ``search`` (one child per indexer shard,
with the context in the HTTP headers) → ``align_decide`` → ``store``. With no endpoint configured
spans are still created, so trace ids reach the logs and downstream services, but nothing is
exported.
"""

from __future__ import annotations

import logging

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanProcessor

tracer = trace.get_tracer("vdup")
_configured = False


def setup_tracing(service_name: str, otlp_endpoint: str = "",
                  processor: SpanProcessor | None = None) -> None:
    """Install the global tracer provider once per process (later calls only add ``processor``)."""
    global _configured
    provider = trace.get_tracer_provider()
    if not _configured:
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        if otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
        trace.set_tracer_provider(provider)
        _configured = True
    if processor is not None and hasattr(provider, "add_span_processor"):
        provider.add_span_processor(processor)


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
