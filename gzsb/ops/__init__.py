"""Operations: structured logs with request ids, /healthz and /readyz, Prometheus metrics."""
