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


class SitePolicy(models.Model):
    """The tier policy a site's cameras run unless a camera's admin chose one
    (``Device.tier_policy``); keyed by the ``Device.site`` text."""

    site = models.CharField(max_length=128, unique=True, help_text="As written on the cameras.")
    policy = models.CharField(max_length=32, help_text="control.policies.POLICIES")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["site"]

    def __str__(self) -> str:
        return f"{self.site}: {self.policy}"


class TierChange(models.Model):
    """A controller decision that changed the tier a camera is asked to send: what the
    switch rate counts, with the reason in plain words."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="tier_changes")
    at = models.DateTimeField()
    from_tier = models.PositiveSmallIntegerField()
    to_tier = models.PositiveSmallIntegerField()
    policy = models.CharField(max_length=32)
    reason = models.CharField(max_length=300)

    class Meta:
        indexes = [models.Index(fields=["device", "-at"], name="tierchange_device_recent")]

    def __str__(self) -> str:
        return f"{self.device_id} {self.at:%H:%M:%S} {self.from_tier} → {self.to_tier}"
