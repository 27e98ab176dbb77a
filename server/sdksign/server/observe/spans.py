"""One OpenTelemetry SERVER span per unary RPC (imported only when traces are on: observe.tracing).

A span is named after the gRPC method ("sdksign.v1.SignatureService/Sign") and continues
the W3C trace context (traceparent, tracestate) that came in the call's metadata, or
starts a trace. It carries rpc.system, rpc.service, rpc.method, rpc.grpc.status_code and,
from the call's log fields, what the config and the API's enums name: sdksign.app,
.kind, .role, .caller, .rule (a refusal's), .valid and .problems (Verify's), and
sdksign.meeting only when `[server] trace_meeting_numbers` is true. Never a token, a
secret or a session name; a caller's values only in their field's shape (zoom.rules.shown),
and each value goes through the log's redaction and length bound as well. The status follows
OpenTelemetry's conventions for gRPC SERVER spans: ERROR only for the codes that say the
server failed (SERVER_ERRORS), with the code's name as its description (never the error's
message: it may echo the request); a caller's own mistake or refusal (INVALID_ARGUMENT,
PERMISSION_DENIED...) leaves it unset, its code in rpc.grpc.status_code. The call's log
line gets trace_id and span_id, and the SDK's own warnings (an export that failed) are
JSON log lines too, without the OTLP headers' values (observe.otlp_headers).
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Iterable, Sequence
from importlib import import_module
from typing import Any

import grpc
import structlog
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .context import bind, call_fields
from .exposition import package_version
from .otlp_headers import HIDDEN, hidden
from .redact import redact_and_bound

# The call's log fields that spans carry, as sdksign.<field>: names from the config and the
# API's enums, and booleans. "meeting" is added only when the config allows it.
FIELDS = ("app", "kind", "role", "caller", "rule", "valid", "problems")
MEETING_FIELD = "meeting"
# rpc.grpc.status_code: the number of each gRPC status code, by the name runtime.rpc logs.
_CODE_NUMBERS = {code.name: code.value[0] for code in grpc.StatusCode}
_UNKNOWN = grpc.StatusCode.UNKNOWN.value[0]
# The codes whose SERVER span has status ERROR (OpenTelemetry's semantic conventions for
# gRPC): the server failed. Every other code is the caller's to fix: the status stays unset.
SERVER_ERRORS = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)

log = structlog.get_logger("sdksign.tracing")

Metadata = Sequence[tuple[str, Any]]


class _MetadataGetter(Getter[Metadata]):
    """The W3C propagator's view of gRPC invocation metadata (keys arrive in lower case;
    binary `-bin` values, bytes, are no trace context)."""

    def get(self, carrier: Metadata, key: str) -> list[str] | None:
        values = [value for name, value in carrier if name == key and isinstance(value, str)]
        return values or None

    def keys(self, carrier: Metadata) -> list[str]:
        return [name for name, _ in carrier]


_PROPAGATOR = TraceContextTextMapPropagator()
_GETTER = _MetadataGetter()


def exporters(names: Iterable[str], otlp_module: str) -> list[SpanExporter]:
    """The exporters OTEL_TRACES_EXPORTER names ("console" or "otlp", whose exporter is in
    `otlp_module` and reads its own OTEL_EXPORTER_OTLP_* settings)."""
    route_sdk_messages()  # what the exporters say as they are made, too
    made: list[SpanExporter] = []
    for name in names:
        if name == "console":
            made.append(ConsoleSpanExporter(formatter=_one_line))
        else:
            made.append(import_module(otlp_module).OTLPSpanExporter())
    return made


def _one_line(span: ReadableSpan) -> str:
    """A span as one line of JSON on standard output (the log is on standard error)."""
    text: str = span.to_json(indent=None)
    return text + "\n"


def service_resource() -> Resource:
    """The resource OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES describe, with
    service.name "sdksign" and service.version this package's unless they say otherwise."""
    found = Resource.create()
    mine: dict[str, str] = {}
    if str(found.attributes.get("service.name", "")).startswith("unknown_service"):
        mine["service.name"] = "sdksign"
    if "service.version" not in found.attributes:
        mine["service.version"] = package_version()
    return found.merge(Resource(mine))


class Tracing:
    """This process's provider, its exporters (each behind a BatchSpanProcessor) and tracer."""

    def __init__(self, exporters: Sequence[SpanExporter], meeting_numbers: bool = False) -> None:
        route_sdk_messages()
        self.provider = TracerProvider(resource=service_resource())
        for exporter in exporters:
            self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self.provider.get_tracer("sdksign.server", package_version())
        self._fields = (*FIELDS, MEETING_FIELD) if meeting_numbers else FIELDS

    def begin(self, full_method: str, context: grpc.aio.ServicerContext) -> Span:
        """The started SERVER span of the call to `full_method` ("/package.Service/Method")."""
        name = full_method[1:]
        service, _, method = name.rpartition("/")
        parent = _PROPAGATOR.extract(context.invocation_metadata() or (), getter=_GETTER)
        span = self._tracer.start_span(
            name,
            parent,
            SpanKind.SERVER,
            {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
        )
        if span.is_recording():
            ids = span.get_span_context()
            bind(trace_id=format(ids.trace_id, "032x"), span_id=format(ids.span_id, "016x"))
        return span

    def end(self, span: Span, code: str) -> None:
        """End `span` with the call's gRPC status `code` ("OK", "INVALID_ARGUMENT"...) and
        its log fields; status ERROR for SERVER_ERRORS only."""
        if span.is_recording():
            span.set_attributes(self.attributes(code))
            if code in SERVER_ERRORS:
                span.set_status(Status(StatusCode.ERROR, code))
        span.end()

    def attributes(self, code: str) -> dict[str, Any]:
        """What the running call's span says at its end: its status code and log fields."""
        fields = call_fields()
        found = {f"sdksign.{key}": fields[key] for key in self._fields if _usable(fields.get(key))}
        attributes = dict(redact_and_bound(None, "", found))
        attributes["rpc.grpc.status_code"] = _CODE_NUMBERS.get(code, _UNKNOWN)
        return attributes

    def flush(self) -> None:
        self.provider.force_flush()

    def shutdown(self) -> None:
        self.provider.shutdown()


# The SDK's parser of OTEL_EXPORTER_OTLP_*HEADERS, which quotes a header it cannot read: often
# a credential ("Bearer ..." without its name).
HEADER_PARSER = "opentelemetry.util.re"


class _LogLines(logging.Handler):
    """OpenTelemetry's own messages (an export that failed, a full queue) as JSON log lines,
    event "opentelemetry", instead of plain text among them; never a header's value, in
    the text or in the exception's traceback (an exporter quotes a header it cannot send)."""

    def emit(self, record: logging.LogRecord) -> None:
        write = getattr(log, record.levelname.lower(), log.warning)
        if record.name == HEADER_PARSER and isinstance(record.args, tuple):
            text = str(record.msg) % tuple(HIDDEN for _ in record.args)
        else:
            text = record.getMessage()
        fields = {"logger": record.name, "text": hidden(text, os.environ)}
        if record.exc_info and record.exc_info[0] is not None:
            # Rendered here, as structlog would ("exception"), to hide the values in it too.
            rendered = "".join(traceback.format_exception(*record.exc_info))
            fields["exception"] = hidden(rendered.removesuffix("\n"), os.environ)
        write("opentelemetry", **fields)


def route_sdk_messages() -> None:
    """Send the "opentelemetry" loggers' messages (warnings and up) to the JSON log, once."""
    sdk = logging.getLogger("opentelemetry")
    if not any(isinstance(handler, _LogLines) for handler in sdk.handlers):
        sdk.addHandler(_LogLines())
        sdk.propagate = False


def _usable(value: object) -> bool:
    """Whether a log field's value makes a span attribute: a non-empty string, a number or a
    boolean, or a non-empty list of strings."""
    if isinstance(value, list | tuple):
        return bool(value) and all(isinstance(item, str) for item in value)
    return isinstance(value, str | int | float) and value != ""
