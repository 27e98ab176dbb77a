"""What an operator sees: logs, metrics, traces and the admin listener.

log: structlog set up once, the per-call context and the redaction of tokens;
metrics and metricfiles: every metric name, and prometheus-client's files across
workers; tracing and spans: OpenTelemetry, off unless asked for; admin: /metrics and
the health endpoints.

Knows nothing of minting or verifying: it may import zoom (to recognise a JWT's shape
when redacting) and errors; config only for type hints.
"""
