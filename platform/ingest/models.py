"""What ingest refused: counters per device and reason, so operators can see bad senders, and
the refused messages themselves (bounded), so that they can see what was sent."""

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


class DeadLetter(models.Model):
    """A message ingest could not store, kept with its bytes so that someone can see what a
    device sent. Bounded: ``ingest.services`` keeps the newest few per (device, reason) and
    a fixed number in all; ``Rejection`` keeps the full count."""

    topic = models.CharField(max_length=256)
    device_id = models.CharField(max_length=64, help_text="As named by the topic; may be unknown.")
    reason = models.CharField(max_length=64)
    detail = models.TextField(blank=True)
    payload = models.BinaryField(help_text="The message's bytes, cut at PAYLOAD_LIMIT.")
    size = models.PositiveIntegerField(help_text="The message's size in bytes before any cut.")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    PAYLOAD_LIMIT = 64 * 1024  # bytes kept of one message
    KEEP_PER_REASON = 20  # dead letters kept per (device, reason): the newest
    KEEP_TOTAL = 10_000  # dead letters kept in all: the newest

    class Meta:
        indexes = [
            models.Index(fields=["device_id", "reason", "-id"], name="deadletter_device_reason")
        ]

    def __str__(self) -> str:
        return f"{self.device_id}: {self.reason} ({self.size} bytes)"
