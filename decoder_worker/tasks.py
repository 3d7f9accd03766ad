"""Celery tasks. Thin: the work is in ``decoder_worker.decoding``; events in ``dashboard.live``."""

from __future__ import annotations

from decoder_worker.celery import app


@app.task(name="decoder_worker.tasks.decode_frames", acks_late=True, reject_on_worker_lost=True)
def decode_frames(frame_ids: list[int]) -> int:
    """Decode frames for live view and announce each new image to the dashboard."""
    from dashboard.live import announce_decoded
    from decoder_worker.decoding import decode_frames as decode

    stored = decode(frame_ids)
    for decoded in stored:
        announce_decoded(decoded)
    return len(stored)


@app.task(name="decoder_worker.tasks.redecode", acks_late=True, reject_on_worker_lost=True)
def redecode(frame_id: int, channels: int) -> int | None:
    """Archive browsing: decode one frame at another quality level k (cached in the archive).

    Runs on the ``archive`` queue so that browsing never delays live decoding.
    """
    from decoder_worker.decoding import redecode as decode

    decoded = decode(frame_id, channels)
    return decoded.pk if decoded else None
