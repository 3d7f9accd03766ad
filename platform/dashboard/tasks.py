"""Dashboard background jobs. ``shared_task``: registered on the decode workers' Celery app
when Django sets up there (``DashboardConfig.ready``), without the workers naming us."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="dashboard.tasks.export_video", acks_late=True, reject_on_worker_lost=True)
def export_video(export_id: int) -> int:
    """Build an MP4 export (runs on the ``archive`` queue)."""
    from dashboard.exports import build_export

    return build_export(export_id).frames
