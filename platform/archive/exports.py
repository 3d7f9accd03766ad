"""Export a camera's time range as an MP4 at a chosen k, as a background job with progress.

The frames are decoded where needed by ``archive.decoding.decode_and_store`` (cached per
(frame, k) like every other decode) and encoded with PyAV (H.264). The job runs on a decode
worker (``archive.jobs.EXPORT_VIDEO``), on the ``archive`` queue.

The video plays in real time: each frame is shown from its capture time (the device's clock)
until the next one's, so a minute of footage lasts a minute whatever the camera's frame rate,
and every frame carries its capture time and the camera's name, burned in as CCTV does.
"""

from __future__ import annotations

import io
import logging
import statistics
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from functools import lru_cache

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.utils import timezone
from PIL import Image, ImageDraw, ImageFont

from archive.decoding import decode_and_store
from archive.images import as_rgb, decoded_images
from archive.jobs import ARCHIVE_QUEUE, EXPORT_VIDEO, JobQueueUnavailable, Priority, queue_job
from archive.models import Export, Frame
from fleet.models import Device

log = logging.getLogger(__name__)

MAX_SPAN = timedelta(hours=24)
MAX_FRAMES = 20_000
BATCH = 32
MS = Fraction(1, 1000)  # the video's time base: presentation times in capture milliseconds


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


def _images(frames: list[Frame], k: int) -> list[tuple[Frame, np.ndarray]]:
    """The frames at k (capped at what each received), decoding the missing ones once;
    a frame that cannot be decoded is left out."""
    wanted = {f.pk: min(k, f.n_layers) for f in frames if f.n_layers}
    have = decoded_images(frames, wanted.values())
    missing = [
        (f, wanted[f.pk]) for f in frames if f.pk in wanted and (f.pk, wanted[f.pk]) not in have
    ]
    if missing:
        decode_and_store(missing)
        have |= decoded_images([f for f, _ in missing], wanted.values())
    return [
        (f, as_rgb(have[(f.pk, wanted[f.pk])])) for f in frames if (f.pk, wanted.get(f.pk)) in have
    ]


def presentation_times_ms(frames: list[Frame]) -> list[int]:
    """When each frame shows, in ms from the first: the capture times (the device's clock),
    so the video plays in real time. A capture time that does not advance, or leaps further
    than an export can span (a device clock reset or set), takes the time between the
    frames' arrivals instead; times always increase."""
    times = [0]
    for before, after in zip(frames, frames[1:], strict=False):
        step = after.capture_time_ms - before.capture_time_ms
        if not 0 < step <= MAX_SPAN.total_seconds() * 1000:
            step = round((after.received_at - before.received_at).total_seconds() * 1000)
        times.append(times[-1] + max(1, step))
    return times


def _last_frame_ms(times: list[int], fps: float) -> int:
    """How long the last frame shows: the camera's usual interval (one frame at ``fps``
    for a single frame)."""
    steps = [b - a for a, b in zip(times, times[1:], strict=False)]
    return round(statistics.median(steps)) if steps else round(1000 / fps)


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size)


def caption(frame: Frame, camera: str) -> str:
    """The burned-in line: the camera and its capture time (the server's time zone)."""
    captured = datetime.fromtimestamp(frame.capture_time_ms / 1000, tz=UTC)
    local = timezone.localtime(captured)
    return f"{camera}  {local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


def burn_in(rgb: np.ndarray, text: str) -> np.ndarray:
    """``text`` in white on a dark band at the top left of the frame, as a CCTV overlay."""
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image, "RGBA")
    font = _font(max(8, image.height // 20))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = max(2, (bottom - top) // 4)
    draw.rectangle((0, 0, right - left + 2 * pad, bottom - top + 2 * pad), fill=(0, 0, 0, 160))
    draw.text((pad - left, pad - top), text, font=font, fill=(255, 255, 255))
    return np.asarray(image)


def build_export(export_id: int) -> Export:
    """Decode and encode the export, saving progress as it goes; failures are recorded."""
    import av

    export = Export.objects.select_related("device").get(pk=export_id)
    if export.status == Export.Status.DONE:
        return export  # a redelivered task
    Export.objects.filter(pk=export.pk).update(status=Export.Status.RUNNING, progress=0.0)
    frames = list(export_frames(export))
    # a frame that does not decode leaves its time to the one before: still real time
    times = presentation_times_ms(frames)
    shows_at = dict(zip((f.pk for f in frames), times, strict=True))
    camera = str(export.device)
    buf = io.BytesIO()
    written, last_pts = 0, 0
    try:
        with av.open(buf, "w", format="mp4") as container:
            stream = None
            for i in range(0, len(frames), BATCH):
                for frame, rgb in _images(frames[i : i + BATCH], export.channels):
                    if stream is None:
                        height, width = (rgb.shape[0] // 2) * 2, (rgb.shape[1] // 2) * 2
                        # No B-frames: decode order is display order, so each frame lasts
                        # until the next one's time (the muxer takes it from the timestamps).
                        stream = container.add_stream("libx264", rate=1, options={"bf": "0"})
                        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                        stream.time_base = stream.codec_context.time_base = MS
                    if rgb.shape[:2] != (stream.height, stream.width):
                        rgb = np.asarray(Image.fromarray(rgb).resize((stream.width, stream.height)))
                    picture = av.VideoFrame.from_ndarray(
                        burn_in(rgb, caption(frame, camera)), format="rgb24"
                    )
                    last_pts = shows_at[frame.pk]
                    picture.pts, picture.time_base = last_pts, MS
                    for packet in stream.encode(picture):
                        container.mux(packet)
                    written += 1
                progress = min(len(frames), i + BATCH) / len(frames)
                Export.objects.filter(pk=export.pk).update(progress=progress, frames=written)
            if stream is not None:
                hold = _last_frame_ms(times, export.fps)
                for packet in stream.encode():
                    if packet.pts == last_pts:
                        packet.duration = hold  # the last frame shows for a usual interval
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
