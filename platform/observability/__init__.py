"""Metrics and structured logs of every Strata process (Prometheus, JSON lines)."""
