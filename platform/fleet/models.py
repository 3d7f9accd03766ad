"""A camera in the fleet and what the platform knows of its connection."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

MAX_TIER = 12  # latent channels of MCUCoder

device_id_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
    "Letters, digits, '.', '_' and '-' only (it is an MQTT topic level).",
)


class Device(models.Model):
    """One MCU camera. ``device_id`` is its MQTT client id and topic level."""

    device_id = models.CharField(max_length=64, unique=True, validators=[device_id_validator])
    name = models.CharField(max_length=128, blank=True)
    site = models.CharField(max_length=128, blank=True, help_text="Farm, yard, building…")
    is_active = models.BooleanField(
        default=True, help_text="Inactive devices are refused at ingest; their archive stays."
    )
    online = models.BooleanField(default=False)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    desired_tier = models.PositiveSmallIntegerField(
        default=MAX_TIER, validators=[MinValueValidator(1), MaxValueValidator(MAX_TIER)]
    )
    max_kbps = models.PositiveIntegerField(
        null=True, blank=True, help_text="Admin bitrate cap in kbit/s; empty for none."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["device_id"]

    def __str__(self) -> str:
        return self.name or self.device_id
