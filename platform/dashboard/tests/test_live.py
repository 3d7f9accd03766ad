"""The live WebSocket: operators receive events of their own cameras only."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from access.services import assign
from archive.events import frame_decoded as announce_decoded
from archive.models import DecodedImage
from archive.services import record_decoded, store_packet
from dashboard.consumers import LiveConsumer
from fleet.services import provision_device
from mcucoder.bitstream import parse_packet
from tests.support.packets import fake_packet

pytestmark = pytest.mark.django_db(transaction=True)


def decoded_frame(device_id: str) -> DecodedImage:
    device = provision_device(device_id)
    frame = store_packet(device, parse_packet(fake_packet(seq=1))).frame
    decoded, _ = record_decoded(frame.pk, 12, b"x", "image/webp", 1.0)
    return DecodedImage.objects.select_related("frame__device").get(pk=decoded.pk)


async def connect(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


def test_events_reach_only_users_who_may_see_the_camera():
    tag = uuid.uuid4().hex[:6]
    mine, other = decoded_frame(f"live-mine-{tag}"), decoded_frame(f"live-other-{tag}")
    users = get_user_model()
    operator = users.objects.create_user(f"live-op-{tag}")
    assign(operator, device=mine.frame.device)
    admin = users.objects.create_user(f"live-admin-{tag}", is_staff=True)

    async def scenario() -> None:
        op_ws, admin_ws = await connect(operator), await connect(admin)
        await database_sync_to_async(announce_decoded)(other)
        await database_sync_to_async(announce_decoded)(mine)
        event = await op_ws.receive_json_from(timeout=10)
        assert event["device_id"] == mine.frame.device.device_id  # not the other camera's
        assert event["bytes"] == sum(3 + i for i in range(12))  # fake_packet's layers
        seen = set()
        while len(seen) < 2:  # admins see both (and perhaps other runs' cameras)
            seen.add((await admin_ws.receive_json_from(timeout=10))["device_id"])
            seen &= {mine.frame.device.device_id, other.frame.device.device_id}
        assert await op_ws.receive_nothing(timeout=0.5)
        await op_ws.disconnect()
        await admin_ws.disconnect()

    async_to_sync(scenario)()  # DB calls run on this thread's connection


def test_anonymous_socket_is_closed():
    from django.contrib.auth.models import AnonymousUser

    async def scenario() -> None:
        communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
        communicator.scope["user"] = AnonymousUser()
        connected, code = await communicator.connect(timeout=10)
        assert not connected and code == 4401
        await communicator.disconnect(timeout=10)  # end the consumer, not leave it to the loop

    async_to_sync(scenario)()  # DB calls run on this thread's connection
