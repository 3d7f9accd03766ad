"""The Celery application, configured from Django settings (``CELERY_*``).

Start a worker with ``celery -A decoder_worker worker -Q live,archive``. ``platform/`` is put
on the import path here, as in ``manage.py``, because the tasks write to the archive.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
for _p in (str(_ROOT), str(_ROOT / "platform")):
    if _p not in sys.path:
        sys.path.insert(0, _p)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "strata.settings.dev")

import django  # noqa: E402
from celery import Celery  # noqa: E402

django.setup()

app = Celery("strata", include=["decoder_worker.tasks"])
app.config_from_object("django.conf:settings", namespace="CELERY")


def worker_command(
    queues: str = "live,archive", *, name: str | None = None, loglevel: str = "INFO"
) -> list[str]:
    """The command line that starts a decode worker, for launchers (demo, tests, benchmarks).

    One process with the solo pool: torch already uses every core for one batch.
    """
    args = [sys.executable, "-m", "celery", "-A", "decoder_worker", "worker", "-Q", queues]
    args += ["--pool", "solo", "--loglevel", loglevel]
    args += ["--without-heartbeat", "--without-gossip", "--without-mingle"]
    return args + (["-n", name] if name else [])
