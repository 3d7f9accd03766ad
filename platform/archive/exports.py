"""Export a camera's time range as an MP4 at a chosen k, as a background job with progress.

The frames are decoded where needed by ``archive.decoding.decode_and_store`` (cached per
(frame, k) like every other decode) and encoded with PyAV (H.264). The job runs on a decode
worker (``archive.jobs.EXPORT_VIDEO``), on the ``archive`` queue.
"""

from __future__ import annotations

import io
import logging
from datetime import datetime, timedelta

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from PIL import Image

from archive.decoding import decode_and_store
from archive.images import as_rgb, decoded_images
from archive.jobs import ARCHIVE_QUEUE, EXPORT_VIDEO, JobQueueUnavailable, Priority, queue_job
from archive.models import Export, Frame
from fleet.models import Device

log = logging.getLogger(__name__)

MAX_SPAN = timedelta(hours=24)
MAX_FRAMES = 20_000
BATCH = 32


class ExportError(ValueError):
    """A range that cannot be exported."""


def export_frames(export: Export) -> QuerySet[Frame]:
    return Frame.objects.filter(
        device=export.device, received_at__gte=export.start, received_at__lt=export.end
    ).order_by("received_at", "seq")


def request_export(
    user: AbstractBaseUser, device: Device, start: datetime, end: datetime, channels: int
) -> Export:
    """Queue an export on the ``archive`` queue, after re-decodes (``archive.jobs``).

    One that cannot be queued is kept as failed, with the reason, and
    ``JobQueueUnavailable`` raised: it never waits as "queued" for a job that does not exist.
    """
    if not start < end or end - start > MAX_SPAN:
        raise ExportError(f"the range must be positive and at most {MAX_SPAN}")
    export = Export.objects.create(
        device=device, created_by=user, start=start, end=end, channels=channels
    )
    n = export_frames(export).count()
    if n == 0 or n > MAX_FRAMES:
        export.delete()
        raise ExportError(f"{n} frames in that range (1..{MAX_FRAMES} can be exported)")
    try:
        queue_job(EXPORT_VIDEO, export.pk, queue=ARCHIVE_QUEUE, priority=Priority.EXPORT)
    except JobQueueUnavailable as exc:
        Export.objects.filter(pk=export.pk).update(status=Export.Status.FAILED, error=str(exc))
        raise
    export.refresh_from_db()
    return export


def _images(frames: list[Frame], k: int) -> list[np.ndarray]:
    """The frames at k (capped at what each received), decoding the missing ones once."""
    wanted = {f.pk: min(k, f.n_layers) for f in frames if f.n_layers}
    have = decoded_images(frames, wanted.values())
    missing = [
        (f, wanted[f.pk]) for f in frames if f.pk in wanted and (f.pk, wanted[f.pk]) not in have
    ]
    if missing:
        decode_and_store(missing)
        have |= decoded_images([f for f, _ in missing], wanted.values())
    return [as_rgb(have[(f.pk, wanted[f.pk])]) for f in frames if (f.pk, wanted.get(f.pk)) in have]


def build_export(export_id: int) -> Export:
    """Decode and encode the export, saving progress as it goes; failures are recorded."""
    import av

    export = Export.objects.select_related("device").get(pk=export_id)
    if export.status == Export.Status.DONE:
        return export  # a redelivered task
    Export.objects.filter(pk=export.pk).update(status=Export.Status.RUNNING, progress=0.0)
    frames = list(export_frames(export))
    buf = io.BytesIO()
    written = 0
    try:
        with av.open(buf, "w", format="mp4") as container:
            stream = None
            for i in range(0, len(frames), BATCH):
                for rgb in _images(frames[i : i + BATCH], export.channels):
                    if stream is None:
                        height, width = (rgb.shape[0] // 2) * 2, (rgb.shape[1] // 2) * 2
                        stream = container.add_stream("libx264", rate=round(export.fps))
                        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                    if rgb.shape[:2] != (stream.height, stream.width):
                        rgb = np.asarray(Image.fromarray(rgb).resize((stream.width, stream.height)))
                    for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                        container.mux(packet)
                    written += 1
                progress = min(len(frames), i + BATCH) / len(frames)
                Export.objects.filter(pk=export.pk).update(progress=progress, frames=written)
            if stream is not None:
                for packet in stream.encode():
                    container.mux(packet)
    except Exception as exc:
        log.exception("export %s failed", export.pk)
        Export.objects.filter(pk=export.pk).update(status=Export.Status.FAILED, error=str(exc))
        raise
    video = buf.getvalue()
    Export.objects.filter(pk=export.pk).update(
        status=Export.Status.DONE, progress=1.0, frames=written, video=video, size=len(video)
    )
    export.refresh_from_db()
    return export
