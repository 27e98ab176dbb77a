"""What an operator sees: logs, metrics, traces and the admin listener.

log: structlog set up once (configure_logging); context: the running call's log fields
(bind); redact: tokens replaced and fields bounded on every line; timestamp: each line's
time; stderr: what native code writes to file descriptor 2, as JSON lines.

metrics: every metric name, made once per process (setup); metricdir:
PROMETHEUS_MULTIPROC_DIR and the workers' folder; metricfiles: the workers' files, their
disk space reserved; exposition: what /metrics shows. tracing and spans: OpenTelemetry,
off unless asked for; otlp_headers: the exporter's header values, kept out of every line
and error; admin: /metrics and the health endpoints.

Importing a module here only defines things: what changes the process (configure_logging,
metrics.setup, tracing.configure) is an explicit call, made once at its start.

Knows nothing of minting or verifying: it may import zoom (to recognise a JWT's shape
when redacting) and errors; config only for type hints.
"""
