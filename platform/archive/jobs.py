"""Background jobs of the archive, queued by task name.

The platform never imports the decode workers: it names their tasks (the contract below)
and Celery carries the call. Who waits for whom, highest first (``Priority``):

1. live viewers: the newest frame of each watched camera (``DECODE_LIVE``, queue ``live``);
2. interactive re-decodes: the quality slider, compare (``REDECODE``, ``archive`` at 0);
3. exports (``EXPORT_VIDEO``, ``archive`` at 3); event frames (motion) at 6;
4. backfill: frames nobody is looking at (``BACKFILL``, ``DECODE_FRAMES``, ``archive`` at 9).

A worker started with ``-Q live,archive`` always looks at ``live`` first, then ``archive`` by
priority (settings: ``queue_order_strategy`` "priority", ``priority_steps``), takes one task
at a time (prefetch 1), and backfill tasks are small (``STRATA_BACKFILL_BATCH`` frames): so
a live frame waits for at most one short task, however long the backlog.
"""

from __future__ import annotations

import logging
from enum import IntEnum
from typing import Any

from celery import current_app
from kombu.exceptions import OperationalError

from archive import coordination

log = logging.getLogger(__name__)

LIVE_QUEUE = "live"
ARCHIVE_QUEUE = "archive"

DECODE_LIVE = "decoder_worker.tasks.decode_live"  # (frame_ids,) newest of each camera: live
DECODE_FRAMES = "decoder_worker.tasks.decode_frames"  # (frame_ids, announce) every one given
REDECODE = "decoder_worker.tasks.redecode"  # (frame_id, channels) on the archive queue
EXPORT_VIDEO = "decoder_worker.tasks.export_video"  # (export_id,) on the archive queue
BACKFILL = "decoder_worker.tasks.backfill"  # (events,) undecoded frames, newest first


class Priority(IntEnum):
    """Message priority on the ``archive`` queue (Redis: 0 is taken first)."""

    INTERACTIVE = 0
    EXPORT = 3
    EVENT = 6  # frames with motion (watched policy), before backfill
    BACKFILL = 9


class NoWorkerTasks(RuntimeError):
    """Tasks would run in-process (no broker configured) but none are registered here."""


class JobQueueUnavailable(RuntimeError):
    """The job queue (Celery's broker, Redis) could not be reached: nothing was queued.
    Pages answer 503 and say so; ingest delivers its batch again."""


def queue_job(name: str, *args: Any, queue: str, priority: int = 0) -> None:
    """Queue task ``name`` with ``args`` on ``queue`` at ``priority`` (0 first).

    With a broker the call goes to the workers by name. Without one (the embedded demo runs
    tasks in-process) the task must be registered in this process: ``CELERY_IMPORTS`` names
    the module that registers it. Raises ``JobQueueUnavailable`` when the broker is down.
    """
    app = current_app
    task = app.tasks.get(name)
    if task is None and app.conf.task_always_eager:
        app.loader.import_default_modules()
        task = app.tasks.get(name)
        if task is None:
            raise NoWorkerTasks(f"task {name} is not registered in this process")
    try:
        if task is not None:
            task.apply_async(args, queue=queue, priority=priority)
        else:
            app.send_task(name, args, queue=queue, priority=priority)
    except OperationalError as exc:  # kombu's "could not connect", after its own retries
        log.warning("could not queue %s: %s", name, exc)
        raise JobQueueUnavailable("the job queue (Redis) cannot be reached") from exc


def tasks_run_here() -> bool:
    """Tasks run in this process as they are queued (the embedded demo: no broker)."""
    return bool(current_app.conf.task_always_eager)


def waiting(queue: str) -> int:
    """Tasks waiting on ``queue`` at priority 0 (0 without a broker): a long task checks
    the live queue between frames and gives way."""
    if current_app.conf.task_always_eager:
        return 0
    client = coordination.client()
    if client is None:
        return 0
    options = current_app.conf.broker_transport_options or {}
    return int(client.llen(options.get("global_keyprefix", "") + queue))
