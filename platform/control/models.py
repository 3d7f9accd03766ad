"""Link telemetry samples that the controller decides from."""

from __future__ import annotations

from django.db import models

from fleet.models import Device


class LinkSample(models.Model):
    """One telemetry message: the link as the device measured it."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="link_samples")
    at = models.DateTimeField(db_index=True)
    throughput_kbps = models.FloatField(help_text="Acknowledged kbit/s: what was carried.")
    link_kbps = models.FloatField(
        null=True, help_text="What the link could carry, from PUBACK timing (devices.uplink)."
    )
    backlog = models.PositiveIntegerField()
    max_backlog = models.PositiveIntegerField()
    puback_ms = models.FloatField(null=True)
    frames_dropped = models.PositiveBigIntegerField(default=0)
    payload = models.JSONField(help_text="The whole telemetry message, as received.")

    class Meta:
        indexes = [models.Index(fields=["device", "-at"], name="linksample_device_recent")]

    def __str__(self) -> str:
        return f"{self.device_id} {self.at:%H:%M:%S} {self.throughput_kbps:.1f} kbit/s"
