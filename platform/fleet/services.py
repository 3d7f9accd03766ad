"""Writes to the fleet: provisioning and connection state."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from fleet.models import Device


def provision_device(device_id: str, *, name: str = "", site: str = "") -> Device:
    """Create the device if it is new; an existing one keeps its settings."""
    device, _ = Device.objects.get_or_create(
        device_id=device_id, defaults={"name": name or device_id, "site": site}
    )
    return device


def mark_seen(device: Device, at: datetime | None = None) -> None:
    """A frame or heartbeat proves the device is up."""
    at = at or timezone.now()
    Device.objects.filter(pk=device.pk).update(online=True, last_seen_at=at)
    device.online, device.last_seen_at = True, at


@transaction.atomic
def set_online(device_id: str, online: bool, at: datetime | None = None) -> bool:
    """Apply a retained status message (online, or the Last Will's offline).

    Returns False for an unknown device id, which is ignored.
    """
    fields: dict = {"online": online}
    if online:
        fields["last_seen_at"] = at or timezone.now()
    return Device.objects.filter(device_id=device_id).update(**fields) > 0
