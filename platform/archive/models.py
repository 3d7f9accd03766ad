"""Frames as the devices sent them, one row per latent layer, and decoded images.

Layers are kept separately (not the packet as one blob) so that any quality level k can
be re-decoded later from the first k layers, and a later packet carrying more layers of the
same frame adds to it.
"""

from __future__ import annotations

from datetime import date

from django.conf import settings
from django.db import models
from django.utils import timezone

from fleet.models import Device


def utc_today() -> date:
    return timezone.now().date()


class Frame(models.Model):
    """One captured frame of one device, identified by the device's sequence number."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="frames")
    seq = models.BigIntegerField(help_text="Device frame sequence number.")
    capture_time_ms = models.BigIntegerField(help_text="Device clock at capture, ms since epoch.")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    model_id = models.BigIntegerField(help_text="Codec model (weights and tables) that encoded it.")
    frame_type = models.PositiveSmallIntegerField(default=0)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    n_layers = models.PositiveSmallIntegerField(default=0, help_text="Layers received so far.")
    header = models.JSONField(default=dict, help_text="Packet header fields needed to decode.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["device", "seq"], name="frame_unique_device_seq")
        ]
        indexes = [models.Index(fields=["device", "-received_at"], name="frame_device_recent")]

    def __str__(self) -> str:
        return f"{self.device_id}#{self.seq}"


class Layer(models.Model):
    """One latent channel's independently decodable chunk, in importance order."""

    frame = models.ForeignKey(Frame, on_delete=models.CASCADE, related_name="layers")
    index = models.PositiveSmallIntegerField(help_text="0 = most important channel.")
    data = models.BinaryField()
    received_on = models.DateField(
        default=utc_today, help_text="UTC day of arrival: the partition key on PostgreSQL."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["frame", "index"], name="layer_unique_frame_index")
        ]
        ordering = ["frame", "index"]

    def __str__(self) -> str:
        return f"{self.frame_id}/layer {self.index}"


class DecodedImage(models.Model):
    """A frame reconstructed from its first ``channels`` layers by one decoder revision."""

    frame = models.ForeignKey(Frame, on_delete=models.CASCADE, related_name="decoded")
    channels = models.PositiveSmallIntegerField()
    content_type = models.CharField(max_length=32, default="image/webp")
    image = models.BinaryField()
    decode_ms = models.FloatField(help_text="Decoder time per frame within its batch.")
    decoded_at = models.DateTimeField(auto_now_add=True)
    decoder = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="Decoder revision that made it (mcucoder.decoders; empty: not recorded). "
        "One made by another revision than the model's release is re-decoded when asked for.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["frame", "channels"], name="decoded_unique_frame_k")
        ]

    def __str__(self) -> str:
        return f"{self.frame_id} at k={self.channels}"


class DecodeFailure(models.Model):
    """A frame that cannot be decoded from its first ``channels`` layers (a corrupt chunk
    under a valid CRC, a feature the decoder lacks): kept so it fails once, alone, and is
    not tried again at that k. A lower k, below the bad layer, may still decode."""

    frame = models.ForeignKey(Frame, on_delete=models.CASCADE, related_name="decode_failures")
    channels = models.PositiveSmallIntegerField()
    error = models.TextField()
    failed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["frame", "channels"], name="decodefailure_unique")
        ]

    def __str__(self) -> str:
        return f"{self.frame_id} at k={self.channels}: {self.error[:60]}"


# --- exports: a camera's time range as an MP4 at a chosen k, built in the background and kept
# until someone deletes it (retention never touches exports).


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


# --- retention (archive.retention): how long frames keep every layer, their first k, and
# anything; a disk budget. Frames inside an event mark or an export are never touched.


class RetentionPolicy(models.Model):
    """One camera's policy, one site's (``device`` empty), or the default (both empty).
    A camera follows its own, else its site's, else the default; none: kept for ever."""

    site = models.CharField(max_length=128, blank=True)
    device = models.OneToOneField(
        Device, null=True, blank=True, on_delete=models.CASCADE, related_name="retention"
    )
    full_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Days frames keep every layer (empty: no limit)."
    )
    keep_layers = models.PositiveSmallIntegerField(
        default=3, help_text="Layers an older frame keeps (its first k: it still decodes at k)."
    )
    keep_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Days before whole frames go (empty: no limit)."
    )
    budget_bytes = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Layer bytes the scope may hold (empty: no budget)."
    )
    warn_ratio = models.FloatField(default=0.8, help_text="Warn when this much is used.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["site"],
                condition=models.Q(device__isnull=True),
                name="retention_one_per_site",
            ),
            models.CheckConstraint(
                condition=models.Q(keep_layers__gte=1), name="retention_keeps_a_layer"
            ),
        ]

    def __str__(self) -> str:
        if self.device_id:
            return f"camera {self.device.device_id}"
        return f"site {self.site}" if self.site else "default"


class EventMark(models.Model):
    """A span of one camera's archive marked as an event: retention keeps its frames whole."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="event_marks")
    start = models.DateTimeField()
    end = models.DateTimeField()
    label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["device", "start"], name="eventmark_device_start")]

    def __str__(self) -> str:
        return f"{self.device_id} {self.start:%Y-%m-%d %H:%M}: {self.label}"
