"""Every metric a Strata process exports: one definition each (the Grafana dashboard,
``deploy/grafana/strata.json``, and the scrape configuration name these).

Counters and histograms live in the process that counts them (ingest, controller, decode
worker, web) and are scraped from it: ``serve`` starts prometheus_client's HTTP server on
``STRATA_METRICS_PORT`` in the long-running commands; the web process answers ``/metrics``.
Gauges read from shared state (devices online, queue lengths, archive bytes) are collected
only by the web process at scrape time (``strata.metrics``), so each is reported once.
"""

from __future__ import annotations

import logging
import os
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, start_http_server

log = logging.getLogger(__name__)

# --- ingest --------------------------------------------------------------------------------
FRAMES_IN = Counter("strata_ingest_frames", "Frame packets archived (new layers or not).")
LAYERS_IN = Counter("strata_ingest_layers", "Latent layers newly archived.")
REJECTED = Counter(
    "strata_ingest_rejected", "Messages set aside (dead letters), by reason.", ["reason"]
)
INGEST_LAG = Histogram(
    "strata_ingest_lag_seconds",
    "Capture (device clock) to the archive's commit.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
)
INGEST_BATCH = Histogram(
    "strata_ingest_batch_seconds",
    "Time to archive and acknowledge one batch of messages.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

# --- decoding -------------------------------------------------------------------------------
DECODE_SECONDS = Histogram(
    "strata_decode_seconds",
    "Decoder time per frame within its batch (stored images only).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

# --- control --------------------------------------------------------------------------------
CONTROL_DECISIONS = Counter(
    "strata_control_decisions",
    "Tier decisions of the controller: changed (a new tier), kept, or failed.",
    ["outcome"],
)
CONTROL_CYCLE = Histogram(
    "strata_control_cycle_seconds",
    "One controller round: read links, decide, store, publish.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# --- key frames -----------------------------------------------------------------------------
KEY_REQUESTS = Counter(
    "strata_key_requests",
    "Key frames asked of cameras, by why (lost, refused, live) and whether the broker took it.",
    ["reason", "outcome"],
)

# --- retention ------------------------------------------------------------------------------
RETENTION_FREED = Counter(
    "strata_retention_freed_bytes", "Layer bytes retention deleted, by what it did.", ["action"]
)

# Names of the gauges ``strata.metrics`` collects at scrape time (declared here so that the
# whole set of names has one home).
DEVICES_ONLINE = "strata_devices_online"
DEVICES = "strata_devices"
QUEUE_LENGTH = "strata_queue_length"
ARCHIVE_BYTES = "strata_archive_bytes"
ARCHIVE_LAYER_BYTES = "strata_archive_layer_bytes"
RETENTION_BUDGET_USE = "strata_retention_budget_use_ratio"

EXPORTED = (
    "strata_ingest_frames_total",
    "strata_ingest_layers_total",
    "strata_ingest_rejected_total",
    "strata_ingest_lag_seconds",
    "strata_ingest_batch_seconds",
    "strata_decode_seconds",
    "strata_control_decisions_total",
    "strata_control_cycle_seconds",
    "strata_key_requests_total",
    "strata_retention_freed_bytes_total",
    DEVICES_ONLINE,
    DEVICES,
    QUEUE_LENGTH,
    ARCHIVE_BYTES,
    ARCHIVE_LAYER_BYTES,
    RETENTION_BUDGET_USE,
)


def count_archived(frames: list[tuple[int, int]]) -> None:
    """(capture_time_ms, new_layers) of each frame a batch committed: counts and lag."""
    now_ms = time.time() * 1000
    for capture_ms, new_layers in frames:
        FRAMES_IN.inc()
        LAYERS_IN.inc(new_layers)
        INGEST_LAG.observe(max(0.0, now_ms - capture_ms) / 1000)


def count_decisions(changed: int, kept: int, failed: int = 0) -> None:
    for outcome, n in (("changed", changed), ("kept", kept), ("failed", failed)):
        if n:
            CONTROL_DECISIONS.labels(outcome).inc(n)


def count_key_requests(reason: str, asked: int, failed: int) -> None:
    """Key frames asked for (published) and those the broker did not take (asked again at
    the next occasion): a rising ``lost`` rate is a lossy link or an ingest falling behind."""
    for outcome, n in (("asked", asked), ("failed", failed)):
        if n:
            KEY_REQUESTS.labels(reason, outcome).inc(n)


def count_rejected(reasons: list[str]) -> None:
    for reason in reasons:
        REJECTED.labels(reason).inc()


def serve(port: int | str | None = None, addr: str | None = None) -> int | None:
    """Expose this process's metrics over HTTP on ``port`` (default ``STRATA_METRICS_PORT``;
    unset or empty: not at all). Returns the port, or None. Meant for a private network
    (the pod or compose network): it needs no login and says only counts and timings.

    A process that forks workers (Celery's prefork pool) is started with
    ``STRATA_METRICS_MULTIPROC_DIR`` (see ``observability``): every child writes its figures
    to the parent's folder and this server reports their sum (prometheus_client's
    multiprocess mode)."""
    port = port if port is not None else os.environ.get("STRATA_METRICS_PORT", "")
    if port in ("", None):
        return None
    addr = addr or os.environ.get("STRATA_METRICS_ADDR", "0.0.0.0")
    registry = None
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    try:
        start_http_server(int(port), addr=addr, **({"registry": registry} if registry else {}))
    except OSError as exc:  # a taken port must not stop ingest or decoding
        log.warning("metrics: cannot listen on %s:%s: %s", addr, port, exc)
        return None
    log.info("metrics on http://%s:%s/metrics", addr, port)
    return int(port)
