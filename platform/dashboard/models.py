"""Exports: a camera's time range as an MP4 at a chosen k, built in the background and kept
until someone deletes it (retention never touches exports)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from fleet.models import Device


class Export(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="exports")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    start = models.DateTimeField()
    end = models.DateTimeField()
    channels = models.PositiveSmallIntegerField(help_text="k: frames with fewer layers use all.")
    fps = models.FloatField(default=5.0, help_text="Playback rate of the video.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    frames = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    video = models.BinaryField(null=True, editable=False)  # in the database, beside the archive
    size = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.device_id} {self.start:%Y-%m-%d %H:%M}–{self.end:%H:%M} k={self.channels}"

    @property
    def filename(self) -> str:
        return f"{self.device.device_id}-{self.start:%Y%m%d-%H%M}-k{self.channels}.mp4"
