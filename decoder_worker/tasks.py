"""Celery tasks: thin wrappers, named by ``archive.jobs``, around the archive's decode
services. The work, the storage and the live events are the platform's. Each passes its
task id as the owner of what it decodes (``archive.decoding``: no frame decoded twice)."""

from __future__ import annotations

from archive import jobs
from strata.celery import app

TASK = {"bind": True, "acks_late": True, "reject_on_worker_lost": True}


@app.task(name=jobs.DECODE_LIVE, **TASK)
def decode_live(self, frame_ids: list[int]) -> int:
    """Live view: the newest frame of each camera of ``frame_ids``, announced."""
    from archive.decoding import decode_live as decode

    return len(decode(frame_ids, owner=self.request.id))


@app.task(name=jobs.DECODE_FRAMES, **TASK)
def decode_frames(self, frame_ids: list[int], announce: bool = True) -> int:
    """Every given frame at its full k (eager decoding; the demo's in-process decode)."""
    from archive.decoding import decode_frames as decode

    return len(decode(frame_ids, announce, owner=self.request.id))


@app.task(name=jobs.REDECODE, **TASK)
def redecode(self, frame_id: int, channels: int) -> int | None:
    """Archive browsing: one frame at another quality level k (cached in the archive)."""
    from archive.decoding import redecode as decode

    decoded = decode(frame_id, channels, owner=self.request.id)
    return decoded.pk if decoded else None


@app.task(name=jobs.BACKFILL, **TASK)
def backfill(self, events: bool = False) -> int:
    """Idle time: a few frames nobody asked for yet (or event frames), newest first."""
    from archive.decoding import backfill as decode

    return decode(owner=self.request.id, events=events)


@app.task(name=jobs.EXPORT_VIDEO, **TASK)
def export_video(self, export_id: int) -> int:
    """Build an MP4 export."""
    from archive.exports import build_export

    return build_export(export_id).frames
