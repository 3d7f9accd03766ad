"""Live events for the dashboard, sent through the Channels layer to open pages."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.urls import reverse

from archive.models import DecodedImage

FLEET_GROUP = "fleet"


def frame_event(decoded: DecodedImage) -> dict:
    """The JSON a page receives for a newly decoded frame."""
    frame = decoded.frame
    return {
        "type": "frame",
        "device_id": frame.device.device_id,
        "frame_id": frame.pk,
        "seq": frame.seq,
        "channels": decoded.channels,
        "width": frame.width,
        "height": frame.height,
        "capture_time_ms": frame.capture_time_ms,
        "image_url": reverse("dashboard:frame-image", args=[frame.pk]) + f"?k={decoded.channels}",
    }


def announce_decoded(decoded: DecodedImage) -> None:
    """Tell every open dashboard that a frame can be shown."""
    layer = get_channel_layer()
    if layer is None:
        return
    async_to_sync(layer.group_send)(
        FLEET_GROUP, {"type": "fleet.event", "event": frame_event(decoded)}
    )
