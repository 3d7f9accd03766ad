"""An idle live-view WebSocket stays open and still receives events (daphne + real Redis).

A page on a quiet camera may go minutes without an event. The channel layer waits for the
next one with a blocking Redis read; if the Redis client's socket timeout is not longer than
that read, every idle socket closes with 1011 (docs/architecture.md, "How one frame flows").
"""

from __future__ import annotations

import json
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from websockets.sync.client import connect

from archive.events import EVENT_TYPE, FLEET_GROUP

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

IDLE_S = 20  # several of channels-redis's 5 s blocking reads


def test_idle_live_socket_stays_open_and_receives_the_next_event(daphne_server, admin_client):
    cookie = f"sessionid={admin_client.cookies['sessionid'].value}"
    url = daphne_server.replace("http://", "ws://") + "/ws/live/"
    with connect(url, additional_headers={"Cookie": cookie}, origin=daphne_server) as ws:
        with pytest.raises(TimeoutError):  # nothing happens, and the socket stays open
            ws.recv(timeout=IDLE_S)

        device_id = f"idle-{uuid.uuid4().hex[:8]}"
        event = {"type": "status", "device_id": device_id, "online": True}
        async_to_sync(get_channel_layer().group_send)(
            FLEET_GROUP, {"type": EVENT_TYPE, "event": event}
        )
        assert json.loads(ws.recv(timeout=10)) == event
