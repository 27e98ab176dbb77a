"""OpenTelemetry traces: off unless the standard OTEL_* environment variables turn them on.

OTEL_TRACES_EXPORTER, a comma list of `otlp`, `console` and `none` (unset, or only
`none`: off; OTEL_SDK_DISABLED=true: off too), says where spans go; OTLP goes over
gRPC or HTTP as OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL say
(`grpc`, the default, or `http/protobuf`). The SDK reads the rest itself: the
endpoint, headers and timeouts (OTEL_EXPORTER_OTLP_*), OTEL_SERVICE_NAME and
OTEL_RESOURCE_ATTRIBUTES (service.name defaults to "sdksign"), the sampler
(OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG), the batching (OTEL_BSP_*).

`sdksign serve` checks what is asked before it starts (problem): a name it does not
know, an OTLP header value holding a control character (CR, LF...), OpenTelemetry not
installed (the `otel` extra), or a setting the SDK refuses (a batch size or timeout that
is not a number, an unknown compression) refuses the start with one line, never showing
a header's value. Each serving process (each worker) makes its own provider and exporters
(configure, called by serve()) and flushes them when it stops (shutdown). When traces
are off nothing of OpenTelemetry is imported, and begin() costs one global lookup;
when on, observe.spans makes one span per unary RPC.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from ..errors import ConfigError
from .otlp_headers import control_character, hidden

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from ..config import Config
    from .spans import Tracing

# OTEL_TRACES_EXPORTER's names this server knows (besides "none").
EXPORTERS = ("otlp", "console")
# Each OTLP protocol, and the exporter module that speaks it.
OTLP_MODULES = {
    "grpc": "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "http/protobuf": "opentelemetry.exporter.otlp.proto.http.trace_exporter",
}
INSTALL = "pip install 'sdksign[otel]'"
# How long a stopping process waits for its last spans to be sent (a collector that does
# not answer must not hold the shutdown up); spans still unsent then are lost.
SHUTDOWN_SECONDS = 5.0

log = structlog.get_logger("sdksign.tracing")

# This process's tracing, when on.
_active: Tracing | None = None


def exporters_asked(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The exporters OTEL_TRACES_EXPORTER names, "none" and blanks left out; none at all when
    OTEL_SDK_DISABLED is true."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = (name.strip().lower() for name in environ.get("OTEL_TRACES_EXPORTER", "").split(","))
    return [name for name in dict.fromkeys(names) if name and name != "none"]


def otlp_protocol(environ: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """The OTLP protocol asked for (grpc unless said), and the variable that says it."""
    for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        if protocol := environ.get(variable, "").strip():
            return protocol, variable
    return "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL"


def problem(environ: Mapping[str, str] = os.environ) -> str | None:
    """Why the traces the environment asks for cannot be made (one line), or None.

    Past the names and the extra, the provider and exporters are made once and let go of,
    as the SDK reads its own settings only as it makes them (from os.environ)."""
    names = exporters_asked(environ)
    if not names:
        return None
    # The SDK's warnings (an unknown sampler, resource attributes it cannot read, some as its
    # modules are imported) come once, as JSON lines, from the process that traces.
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        if (why := _unavailable(names, environ)) is not None:
            return why
        _made(names, environ).shutdown()
    except ConfigError as exc:
        return str(exc)
    finally:
        logging.disable(previous)
    return None


def _unavailable(names: list[str], environ: Mapping[str, str]) -> str | None:
    """Why the exporters `names` cannot be made here: a name or protocol not known, an OTLP
    header value with a control character, or OpenTelemetry not installed."""
    if unknown := [name for name in names if name not in EXPORTERS]:
        return f"OTEL_TRACES_EXPORTER: {unknown[0]!r} is not one of {', '.join(EXPORTERS)}, none"
    modules = ["opentelemetry.sdk.trace"]
    if "otlp" in names:
        protocol, variable = otlp_protocol(environ)
        if protocol not in OTLP_MODULES:
            return f"{variable}: {protocol!r} is not one of {', '.join(OTLP_MODULES)}"
        if (why := control_character(environ)) is not None:
            return why
        modules.append(OTLP_MODULES[protocol])
    for module in modules:  # found, not imported: the exporters' modules warn as they load
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # no parent package; or set to None in sys.modules
            found = False
        if not found:
            return (
                f"OTEL_TRACES_EXPORTER={','.join(names)} asks for traces, but OpenTelemetry "
                f"is not installed ({module}): {INSTALL}"
            )
    return None


def _made(names: list[str], environ: Mapping[str, str], meeting_numbers: bool = False) -> Tracing:
    """The provider and exporters `names` (not yet this process's); ConfigError (one line)
    when the SDK refuses one of its OTEL_* settings."""
    from .spans import Tracing, exporters

    module = OTLP_MODULES.get(otlp_protocol(environ)[0], "")
    try:
        return Tracing(exporters(names, module), meeting_numbers)
    except Exception as exc:  # the SDK's ValueErrors and its own exceptions alike
        raise ConfigError(_refusal(exc, environ)) from None


def _refusal(error: Exception, environ: Mapping[str, str]) -> str:
    """The SDK's refusal of a setting in one line, naming the variable where its error says
    the variable or quotes its value."""
    text = hidden(" ".join(str(error).split()) or type(error).__name__, environ)
    named = [
        name
        for name, value in sorted(environ.items())
        if name.startswith("OTEL_")
        and (name in text or (value and (f"'{value}'" in text or f'"{value}"' in text)))
    ]
    return f"{', '.join(named) or 'an OTEL_* variable'}: OpenTelemetry refuses it: {text}"


def configure(config: Config | None = None, environ: Mapping[str, str] = os.environ) -> None:
    """Set up this process's tracer provider and exporters from OTEL_* (each serving process
    calls it); traces off when the environment does not ask for them. ConfigError (one
    line) when what it asks for cannot be made."""
    shutdown()
    names = exporters_asked(environ)
    if not names:
        return
    if (why := _unavailable(names, environ)) is not None:
        raise ConfigError(why)
    _begin_tracing(_made(names, environ, config is not None and config.trace_meeting_numbers))


def start(exporters: Sequence[SpanExporter], meeting_numbers: bool = False) -> None:
    """Trace every unary RPC from now on, each span batched to each of `exporters` (tests
    give an in-memory one). With `meeting_numbers`, spans carry them."""
    from .spans import Tracing

    _begin_tracing(Tracing(exporters, meeting_numbers))


def _begin_tracing(tracing: Tracing) -> None:
    global _active
    shutdown()
    _active = tracing


def shutdown() -> None:
    """Send the spans still batched, at most SHUTDOWN_SECONDS, and stop tracing (nothing
    when off): call it once the server has stopped."""
    global _active
    active, _active = _active, None
    if active is None:
        return
    stopping = threading.Thread(target=active.shutdown, name="sdksign-trace-shutdown", daemon=True)
    stopping.start()
    stopping.join(SHUTDOWN_SECONDS)


def flush() -> None:
    """Send every span ended so far now (tests read their exporter after it)."""
    if _active is not None:
        _active.flush()


def begin(full_method: str, context: Any) -> Any:
    """Start the server span of one RPC, continuing the call's W3C traceparent; None when
    tracing is off, or when OpenTelemetry failed (a sampler or span processor that
    raised): the call goes on, untraced."""
    active = _active
    if active is None:
        return None
    try:
        return active.begin(full_method, context)
    except Exception:
        _failed("begin")
        return None


def end(span: Any, code: str) -> None:
    """End the span `begin` returned (None: nothing) with the call's status and log fields;
    never raises into the call."""
    if span is None:
        return
    active = _active
    try:
        if active is None:  # stopped meanwhile: the span ends as it is
            span.end()
        else:
            active.end(span, code)
    except Exception:
        _failed("end")


# The stages (begin, end) whose failure was logged: once each per process, not once a call.
_failures_logged: set[str] = set()


def _failed(stage: str) -> None:
    if stage not in _failures_logged:
        _failures_logged.add(stage)
        log.exception(f"tracing failed: calls go on without their span's {stage} (said once)")
