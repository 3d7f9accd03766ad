"""Metrics and structured logs of every Strata process (Prometheus, JSON lines).

``PROMETHEUS_MULTIPROC_DIR`` (a forking process: Celery's prefork pool) must exist before
prometheus_client is imported, and must not hold a previous run's figures: the process that
imports this package first (the parent; children fork from it) makes it and empties it.
"""

import os
from pathlib import Path

if _dir := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    Path(_dir).mkdir(parents=True, exist_ok=True)
    for _old in Path(_dir).glob("*.db"):
        _old.unlink(missing_ok=True)
