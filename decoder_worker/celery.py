"""The decode workers' entry point: Django set up, then the platform's Celery app.

Start a worker with ``celery -A decoder_worker worker -Q live,archive``. The app is the
platform's own (``strata.celery``); this package adds only the task wrappers
(``decoder_worker.tasks``), named in ``CELERY_IMPORTS``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "strata.settings.dev")

import django

django.setup()

from celery.signals import worker_ready, worker_shutdown  # noqa: E402

from observability import metrics  # noqa: E402
from strata.celery import app  # noqa: E402

app.loader.import_default_modules()  # registers decoder_worker.tasks

ANNOUNCE_EVERY_S = 10


def _announce_forever(name: str, stop: threading.Event) -> None:
    """Tell the platform this worker is alive and what it decodes on (the ``auto`` decode
    policy: a GPU worker makes it eager), until the worker stops."""
    from archive.decoding import torch_device
    from archive.policy import announce_worker, retire_worker

    device = torch_device()
    while not stop.is_set():
        try:
            announce_worker(name, device)
        except Exception as exc:  # Redis away: the policy falls back, the worker goes on
            logging.getLogger(__name__).warning("cannot announce worker %s: %s", name, exc)
        stop.wait(ANNOUNCE_EVERY_S)
    try:
        retire_worker(name, device)
    except Exception:  # stopping: the entry expires by itself
        pass


_stop = threading.Event()


@worker_ready.connect
def _start_announcing(sender, **_) -> None:
    metrics.serve()  # STRATA_METRICS_PORT, if set (the solo pool: one process)
    threading.Thread(
        target=_announce_forever, args=(sender.hostname, _stop), daemon=True, name="announce"
    ).start()


@worker_shutdown.connect
def _stop_announcing(**_) -> None:
    _stop.set()


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
