"""Celery tasks: thin wrappers, named by ``archive.jobs``, around the archive's decode
services. The work, the storage and the live events are the platform's."""

from __future__ import annotations

from archive import jobs
from strata.celery import app


@app.task(name=jobs.DECODE_FRAMES, acks_late=True, reject_on_worker_lost=True)
def decode_frames(frame_ids: list[int]) -> int:
    """Decode frames for live view; the archive announces each new image."""
    from archive.decoding import decode_frames as decode

    return len(decode(frame_ids))


@app.task(name=jobs.REDECODE, acks_late=True, reject_on_worker_lost=True)
def redecode(frame_id: int, channels: int) -> int | None:
    """Archive browsing: one frame at another quality level k (cached in the archive)."""
    from archive.decoding import redecode as decode

    decoded = decode(frame_id, channels)
    return decoded.pk if decoded else None


@app.task(name=jobs.EXPORT_VIDEO, acks_late=True, reject_on_worker_lost=True)
def export_video(export_id: int) -> int:
    """Build an MP4 export."""
    from archive.exports import build_export

    return build_export(export_id).frames
