"""Background jobs of the archive, queued by task name.

The platform never imports the decode workers: it names their tasks (the contract below)
and Celery carries the call. Queues: ``live`` for frames people are watching, ``archive``
for re-decodes and exports, so browsing never delays live view.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from kombu.exceptions import OperationalError

log = logging.getLogger(__name__)

DECODE_FRAMES = "decoder_worker.tasks.decode_frames"  # (frame_ids,) on the live queue
REDECODE = "decoder_worker.tasks.redecode"  # (frame_id, channels) on the archive queue
EXPORT_VIDEO = "decoder_worker.tasks.export_video"  # (export_id,) on the archive queue


class NoWorkerTasks(RuntimeError):
    """Tasks would run in-process (no broker configured) but none are registered here."""


class JobQueueUnavailable(RuntimeError):
    """The job queue (Celery's broker, Redis) could not be reached: nothing was queued.
    Pages answer 503 and say so; ingest delivers its batch again."""


def queue_job(name: str, *args: Any, queue: str) -> None:
    """Queue task ``name`` with ``args`` on ``queue``.

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
            task.apply_async(args, queue=queue)
        else:
            app.send_task(name, args, queue=queue)
    except OperationalError as exc:  # kombu's "could not connect", after its own retries
        log.warning("could not queue %s: %s", name, exc)
        raise JobQueueUnavailable("the job queue (Redis) cannot be reached") from exc
