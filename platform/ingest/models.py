"""Counters of what ingest refused, per device and reason, so operators can see bad senders."""

from __future__ import annotations

from django.db import models


class Rejection(models.Model):
    """How many messages from ``device_id`` were refused for ``reason``, and the last one."""

    device_id = models.CharField(max_length=64, help_text="As named by the topic; may be unknown.")
    reason = models.CharField(max_length=64)
    count = models.PositiveBigIntegerField(default=0)
    last_detail = models.TextField(blank=True)
    first_at = models.DateTimeField(auto_now_add=True)
    last_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["device_id", "reason"], name="rejection_unique")
        ]

    def __str__(self) -> str:
        return f"{self.device_id}: {self.reason} ×{self.count}"
