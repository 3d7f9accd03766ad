"""Live events of the archive, sent through the Channels layer to whoever listens.

Every event goes to the fleet group (admins' pages) and to the camera's own group, which
operators' pages join for each camera assigned to them: nobody receives a camera's frames
who may not see the camera. The dashboard's WebSocket consumer forwards them to pages.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db.models import Sum
from django.db.models.functions import Length

from archive.models import DecodedImage, Layer

FLEET_GROUP = "fleet"
EVENT_TYPE = "fleet.event"  # the channel-layer message type (consumers' ``fleet_event``)


def device_group(device_id: str) -> str:
    """The group of one camera's events (device ids are valid group-name characters)."""
    return f"device.{device_id}"


def frame_event(decoded: DecodedImage) -> dict[str, Any]:
    """A newly decoded frame; ``bytes`` (what its layers weigh) lets a page show the
    camera's bitrate as frames arrive."""
    frame = decoded.frame
    size = Layer.objects.filter(frame=frame, index__lt=decoded.channels).aggregate(
        b=Sum(Length("data"))
    )["b"]
    return {
        "type": "frame",
        "device_id": frame.device.device_id,
        "frame_id": frame.pk,
        "seq": frame.seq,
        "channels": decoded.channels,
        "decoder": decoded.decoder,  # the revision that made it: pages version its URL by it
        "width": frame.width,
        "height": frame.height,
        "capture_time_ms": frame.capture_time_ms,
        "bytes": size or 0,
    }


def frame_decoded(decoded: DecodedImage) -> None:
    """Tell every listener that may see the camera that a frame can be shown."""
    layer = get_channel_layer()
    if layer is None:
        return
    event = frame_event(decoded)
    message = {"type": EVENT_TYPE, "event": event}
    for group in (FLEET_GROUP, device_group(event["device_id"])):
        async_to_sync(layer.group_send)(group, message)
