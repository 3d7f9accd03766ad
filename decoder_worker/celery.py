"""The decode workers' entry point: Django set up, then the platform's Celery app.

Start a worker with ``celery -A decoder_worker worker -Q live,archive``. The app is the
platform's own (``strata.celery``); this package adds only the task wrappers
(``decoder_worker.tasks``), named in ``CELERY_IMPORTS``.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "strata.settings.dev")

import django

django.setup()

from strata.celery import app  # noqa: E402

app.loader.import_default_modules()  # registers decoder_worker.tasks


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
