"""Metrics and structured logs of every Strata process (Prometheus, JSON lines).

A process that forks workers (Celery's prefork pool) gets ``STRATA_METRICS_MULTIPROC_DIR``:
the first import here, in the parent, makes an empty folder of its own under it
(``<dir>/<pid>``, emptied: a restarted container reuses pids) and points prometheus_client's
multiprocess mode at it (``PROMETHEUS_MULTIPROC_DIR``, read when prometheus_client is first
imported, so before it). Children fork from the parent and write there; the parent's
metrics port reports their sum. Any other process started with the variable (a health
check's ``celery inspect ping``) gets a folder of its own, removed when it exits, so it
never touches the worker's figures.
"""

import atexit
import os
import shutil
from pathlib import Path

if _base := os.environ.get("STRATA_METRICS_MULTIPROC_DIR"):
    _own, _pid = Path(_base) / str(os.getpid()), os.getpid()
    shutil.rmtree(_own, ignore_errors=True)
    _own.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_own)

    @atexit.register
    def _forget() -> None:
        if os.getpid() == _pid:  # the process that made it, not a forked child
            shutil.rmtree(_own, ignore_errors=True)
