"""Read-side queries the dashboard pages share."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from archive.models import DecodedImage, Frame
from fleet.models import Device


@dataclass(frozen=True)
class CameraTile:
    device: Device
    latest: DecodedImage | None


def latest_decoded(device: Device) -> DecodedImage | None:
    """The newest decoded image of the device's most recent decoded frame."""
    return (
        DecodedImage.objects.filter(frame__device=device)
        .select_related("frame")
        .defer("image")
        .order_by("-frame__capture_time_ms", "-frame__seq", "-channels")
        .first()
    )


def camera_tiles() -> list[CameraTile]:
    return [CameraTile(d, latest_decoded(d)) for d in Device.objects.all()]


def recent_frames(device: Device, limit: int = 24) -> QuerySet[Frame]:
    return Frame.objects.filter(device=device).order_by("-seq")[:limit]
