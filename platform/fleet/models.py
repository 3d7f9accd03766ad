"""A camera in the fleet, what the platform knows of its connection, and the limits admins set."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from protocol.payloads import (
    CAPTURE_MODES,
    MAX_DEADLINE_MS,
    MAX_FPS,
    MAX_TIER,
    MIN_DEADLINE_MS,
    MIN_TIER,
)
from protocol.topics import DEVICE_ID_PATTERN

device_id_validator = RegexValidator(
    DEVICE_ID_PATTERN,
    "Letters, digits, '.', '_' and '-' only (it is an MQTT topic level).",
)
CAPTURE_MODE_LABELS = {"periodic": "Periodic", "motion": "On motion"}
tier_validators = [MinValueValidator(MIN_TIER), MaxValueValidator(MAX_TIER)]


class Device(models.Model):
    """One MCU camera. ``device_id`` is its MQTT client id and topic level."""

    device_id = models.CharField(max_length=64, unique=True, validators=[device_id_validator])
    name = models.CharField(max_length=128, blank=True)
    site = models.CharField(max_length=128, blank=True, help_text="Farm, yard, building…")
    is_active = models.BooleanField(
        default=True, help_text="Inactive devices are refused at ingest; their archive stays."
    )
    online = models.BooleanField(default=False, help_text="Its retained status says connected.")
    last_seen_at = models.DateTimeField(null=True, blank=True)
    checkin_interval_s = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1)],
        help_text="How often it is expected to send something (heartbeat or duty-cycle wake-up); "
        "it counts as up for a grace period of a few intervals after it was last seen.",
    )
    # --- admin limits and the desired state the platform publishes (retained, versioned) ---
    desired_tier = models.PositiveSmallIntegerField(
        default=MAX_TIER,
        validators=tier_validators,
        help_text="The tier the automatic controller chose; limits below still apply.",
    )
    tier_reason = models.JSONField(
        default=dict, blank=True, help_text="The inputs of the controller's last decision."
    )
    tier_decided_at = models.DateTimeField(null=True, blank=True)
    min_tier = models.PositiveSmallIntegerField(default=1, validators=tier_validators)
    max_tier = models.PositiveSmallIntegerField(default=MAX_TIER, validators=tier_validators)
    tier_override = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=tier_validators,
        help_text="A fixed tier set by an admin; empty lets the controller choose.",
    )
    max_kbps = models.PositiveIntegerField(
        null=True, blank=True, help_text="Admin bitrate cap in kbit/s; empty for none."
    )
    deadline_ms = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(MIN_DEADLINE_MS), MaxValueValidator(MAX_DEADLINE_MS)],
        help_text="Live deadline: the camera trims channels, or skips a frame, that would arrive"
        " later than this after capture. Empty: every frame is sent at its tier (store and"
        " forward).",
    )
    tier_policy = models.CharField(
        max_length=32,
        default="",
        blank=True,
        help_text="The tier controller's policy for this camera (control.policies.POLICIES);"
        " empty: its site's (control.SitePolicy), else robust.",
    )
    fps = models.FloatField(
        default=1.0,
        validators=[MinValueValidator(0), MaxValueValidator(MAX_FPS)],
        help_text="Frames per second; 0 pauses capture.",
    )
    capture_mode = models.CharField(
        max_length=16,
        choices=[(mode, CAPTURE_MODE_LABELS[mode]) for mode in CAPTURE_MODES],
        default="periodic",
        help_text="Periodic sends every frame; on motion only frames in which something moved.",
    )
    desired_version = models.PositiveBigIntegerField(
        default=0, help_text="Version of the last desired state published."
    )
    desired_at = models.DateTimeField(null=True, blank=True)
    key_request = models.PositiveBigIntegerField(
        default=0, help_text="Key frames asked for so far (the desired state's key_request)."
    )
    key_requested_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the key frame still awaited was asked for; empty: none outstanding.",
    )
    key_asked_at = models.DateTimeField(
        null=True, blank=True, help_text="When a key frame was last asked for, answered or not."
    )
    # --- what the device says it applied (its retained ``reported`` message) ---
    reported = models.JSONField(null=True, blank=True)
    reported_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["site", "device_id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(min_tier__lte=models.F("max_tier")),
                name="device_min_tier_le_max_tier",
            )
        ]

    def __str__(self) -> str:
        return self.name or self.device_id


class ConnectionChange(models.Model):
    """A camera going online or offline (its retained status, the Last Will), kept so that
    the archive timeline can tell an offline period from a quiet one."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="connection_changes")
    at = models.DateTimeField()
    online = models.BooleanField()

    class Meta:
        indexes = [models.Index(fields=["device", "at"], name="connchange_device_at")]

    def __str__(self) -> str:
        return f"{self.device_id} {'online' if self.online else 'offline'} at {self.at:%Y-%m-%d %H:%M:%S}"


class DeviceCredential(models.Model):
    """A camera's MQTT login. The username is its device id (the broker forces the client id
    to the username); the password is kept only as the broker's own hash
    (``fleet.credentials.mosquitto_hash``), shown once when issued."""

    device = models.OneToOneField(Device, on_delete=models.CASCADE, related_name="credential")
    username = models.CharField(max_length=64, unique=True)
    password_hash = models.CharField(max_length=255)
    issued_at = models.DateTimeField()
    revoked_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when revoked: the broker refuses the login."
    )

    def __str__(self) -> str:
        return f"{self.username} ({'revoked' if self.revoked_at else 'active'})"
