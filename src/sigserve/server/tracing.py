"""OpenTelemetry traces of scoring requests: a server span per request with a child per phase
(queue, decode, enforce, batch, predict, encode), exported over OTLP.

Off unless the standard variables ask for OTLP export (`OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or `OTEL_TRACES_EXPORTER=otlp`); `OTEL_SDK_DISABLED=true`
or `OTEL_TRACES_EXPORTER=none` keep it off. Off, nothing of OpenTelemetry is imported and a
request costs one attribute check. On, everything else (sampler, resource, exporter endpoint,
headers, batch processor) is the SDK's own reading of `OTEL_*`; the service name defaults to
"sigserve". Spans are written once the answer is sent, from the phase times scoring records
anyway. Set up in each worker after the fork: the batch processor's thread must not be forked.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sigserve.scoring import Phases

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider

logger = logging.getLogger("sigserve.tracing")

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
EXTRA_HINT = "pip install 'sigserve[otel]'"
DEFAULT_SERVICE_NAME = "sigserve"


def requested(environ: Mapping[str, str] = os.environ) -> str | None:
    """The variable that asks for OTLP traces, or None when none does (or the SDK is disabled)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporters = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return "OTEL_TRACES_EXPORTER" if "otlp" in (e.strip() for e in exporters.split(",")) else None
    return next((name for name in ENDPOINT_VARIABLES if environ.get(name, "").strip()), None)


def missing_extra() -> str | None:
    """At start, once: why tracing that the environment asks for cannot run, or None."""
    variable = requested()
    if variable is None:
        return None
    try:
        _exporter_class()
    except ImportError as exc:
        return (f"{variable} asks for OpenTelemetry traces, but {exc.name or 'the SDK'} is not installed "
                f"({EXTRA_HINT}); serving without traces")
    return None


def carrier(headers: Iterable[tuple[str | bytes, str | bytes]]) -> dict[str, str]:
    """HTTP headers (ASGI's byte pairs) or gRPC metadata (`context.invocation_metadata()`) as the
    string mapping propagators read `traceparent`, `tracestate` and `baggage` from."""
    return {
        (k.decode("latin-1") if isinstance(k, bytes) else k).lower(): v.decode("latin-1") if isinstance(v, bytes) else v
        for k, v in headers
    }


class Tracer:
    """This worker's tracer provider, and spans written from a finished request's phase times."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry import propagate, trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self.provider = provider
        self._tracer = provider.get_tracer("sigserve")
        self._extract = propagate.extract  # the propagators OTEL_PROPAGATORS names: W3C trace context by default
        self._in_context = trace.set_span_in_context
        self._server, self._error, self._status = SpanKind.SERVER, StatusCode.ERROR, Status
        self._epoch_offset_ns = time.time_ns() - time.perf_counter_ns()

    def context_from(self, headers: Iterable[tuple[str | bytes, str | bytes]]) -> Context:
        """The remote parent that a request's `traceparent` (HTTP header or gRPC metadata) names."""
        return self._extract(carrier(headers))

    def request(self, name: str, parent: Context | None, started: float, attributes: dict[str, Any],
                phases: Phases | None = None, error: BaseException | None = None) -> None:
        """A server span from `started` (time.perf_counter) to now, its phases as children.
        Attributes hold no bodies; an error is recorded by its type only (messages may quote input)."""
        start_ns = round(started * 1e9) + self._epoch_offset_ns
        span = self._tracer.start_span(name, context=parent, kind=self._server,
                                       attributes={k: v for k, v in attributes.items() if v is not None},
                                       start_time=start_ns)
        if not span.is_recording():  # sampled out
            span.end()
            return
        if error is not None:
            error_type = getattr(error, "error_code", None) or type(error).__name__
            span.set_attribute("error.type", error_type)
            span.set_status(self._status(self._error, error_type))
        elif attributes.get("http.response.status_code", 200) >= 500:
            span.set_status(self._status(self._error))
        if phases is not None and phases.done:
            self._phases(span, phases)
        span.end(end_time=time.time_ns())

    def _phases(self, parent: Any, phases: Phases) -> None:
        context = self._in_context(parent)
        steps = [("queue", phases.submitted, phases.decode), ("decode", phases.decode, phases.enforce),
                 ("enforce", phases.enforce, phases.prepared)]
        if phases.batch_size:
            steps.append(("batch", phases.prepared, phases.predict))
        steps += [("predict", phases.predict, phases.encode), ("encode", phases.encode, phases.done)]
        offset = self._epoch_offset_ns
        for name, start, end in steps:
            if not start or end < start:
                continue
            attributes = {"sigserve.batch.rows": phases.batch_size} if name == "predict" and phases.batch_size else None
            child = self._tracer.start_span(name, context=context, attributes=attributes, start_time=start + offset)
            child.end(end_time=end + offset)

    def shutdown(self) -> None:
        """Export what is buffered before the worker exits."""
        self.provider.shutdown()


def start() -> Tracer | None:
    """In each worker after the fork: a tracer exporting over OTLP as `OTEL_*` say, or None when
    they do not ask for it (or the extra is missing, which the master has already said)."""
    if requested() is None:
        return None
    try:
        exporter_class = _exporter_class()
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        return None
    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)  # the sampler is OTEL_TRACES_SAMPLER's
    provider.add_span_processor(BatchSpanProcessor(exporter_class()))  # endpoint, headers: OTEL_EXPORTER_OTLP_*
    return Tracer(provider)


def _exporter_class() -> Any:
    """OTLP over HTTP (the spec's default protocol), or gRPC when `…_PROTOCOL=grpc`."""
    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")).strip().lower()
    import opentelemetry.sdk.trace  # noqa: F401 - the SDK first: its absence is the usual cause

    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter


def warn_if_unavailable() -> None:
    """Once, at start: tracing asked for but not installed is a warning, not a refusal to serve
    (the variables are often set for a whole cluster)."""
    problem = missing_extra()
    if problem is not None:
        logger.warning("%s", problem)
