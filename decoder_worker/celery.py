"""The decode workers' entry point: Django set up, then the platform's Celery app.

A host runs two worker processes (``host_workers``): one reserved for live views
(``celery -A decoder_worker worker -Q live``), so that a live frame never waits behind a
backfill decode, and one for everything (``-Q live,archive``: live first when it is free),
at a lower CPU priority. The app is the platform's own (``strata.celery``); this package
adds only the task wrappers (``decoder_worker.tasks``), named in ``CELERY_IMPORTS``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "strata.settings.dev")

import django

django.setup()

from celery.signals import worker_process_init, worker_ready, worker_shutdown  # noqa: E402
from django.conf import settings  # noqa: E402

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


def limit_decode_threads(threads: int | None = None) -> int:
    """Give torch ``STRATA_DECODE_THREADS`` intra-op threads (0: torch's default, every
    core), so that the decode processes of one host share its cores instead of each
    starting a thread per core. Returns the threads torch now uses."""
    import torch

    threads = settings.STRATA_DECODE_THREADS if threads is None else threads
    if threads > 0:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


_stop = threading.Event()


@worker_process_init.connect
def _limit_child_threads(**_) -> None:
    limit_decode_threads()  # a prefork child decodes in its own process


@worker_ready.connect
def _start_announcing(sender, **_) -> None:
    from archive.decoding import warm_decoder

    threads = limit_decode_threads()  # the solo pool decodes in this process
    log = logging.getLogger(__name__)
    log.info("%s decodes with %d torch threads", sender.hostname, threads)
    try:
        log.info("%s: decoder warm in %.2f s", sender.hostname, warm_decoder())
    except Exception:  # its first task loads it again and says why, if it still fails
        log.exception("%s: cannot warm the decoder", sender.hostname)
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

    One process with the solo pool, one task at a time, acknowledged late, reserving no
    other (``--concurrency 1``: Celery's prefetch is concurrency x multiplier, and its
    default concurrency is the core count even for the solo pool): a task it has not
    started stays in Redis, where another worker can take it.
    """
    args = [sys.executable, "-m", "celery", "-A", "decoder_worker", "worker", "-Q", queues]
    args += ["--pool", "solo", "--concurrency", "1", "--loglevel", loglevel]
    args += ["--without-heartbeat", "--without-gossip", "--without-mingle"]
    return args + (["-n", name] if name else [])


@dataclass(frozen=True)
class WorkerRole:
    """One decode worker process of a host: its queues, in the order it looks at them, and
    its CPU priority (Unix ``nice``) against the host's other processes."""

    name: str
    queues: str
    nice: int


LIVE_WORKER = WorkerRole("live", "live", 0)
# Takes live decodes too when the live worker is busy (live first: queue_order_strategy).
ARCHIVE_WORKER = WorkerRole("archive", "live,archive", 10)
HOST_WORKERS = (LIVE_WORKER, ARCHIVE_WORKER)


def decode_threads(processes: int, cores: int | None = None) -> int:
    """Torch threads per decode process when ``processes`` share the host's cores: two
    processes on 2 cores get one each (two threads each would fight over both cores)."""
    return max(1, (cores or os.cpu_count() or 1) // max(1, processes))


@dataclass(frozen=True)
class WorkerProcess:
    role: WorkerRole
    args: list[str]
    env: dict[str, str]


def host_workers(
    name: str, *, loglevel: str = "INFO", cores: int | None = None
) -> list[WorkerProcess]:
    """The decode workers one host starts (``HOST_WORKERS``): command line and the
    environment to add to the caller's, named ``<role>-<name>@<host>``."""
    threads = decode_threads(len(HOST_WORKERS), cores)
    workers = []
    for role in HOST_WORKERS:
        args = worker_command(role.queues, name=f"{role.name}-{name}@%h", loglevel=loglevel)
        if role.nice:
            args = ["nice", "-n", str(role.nice), *args]
        workers.append(WorkerProcess(role, args, {"STRATA_DECODE_THREADS": str(threads)}))
    return workers
