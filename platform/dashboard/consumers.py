"""WebSocket consumer that pushes fleet events to signed-in users, within their scope."""

from __future__ import annotations

import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from redis.exceptions import RedisError

from access.services import is_admin, visible_devices
from archive.events import FLEET_GROUP, device_group
from dashboard.services import frame_url, image_url

log = logging.getLogger(__name__)

TRY_AGAIN_LATER = 1013  # WebSocket close code: the service is away for now (live.js retries)


@database_sync_to_async
def groups_for(user) -> list[str]:
    """Admins follow the whole fleet; operators each of their cameras (fixed at connect:
    a page reconnects after an assignment changes)."""
    if is_admin(user):
        return [FLEET_GROUP]
    return [device_group(d) for d in visible_devices(user).values_list("device_id", flat=True)]


class LiveConsumer(AsyncJsonWebsocketConsumer):
    groups_joined: list[str]

    async def connect(self) -> None:
        self.groups_joined = []
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        groups = await groups_for(user)
        try:
            for group in groups:
                await self.channel_layer.group_add(group, self.channel_name)
        except (RedisError, ConnectionError, OSError, TimeoutError) as exc:  # Redis away
            log.warning("live view unavailable: %s", exc)
            await self.accept()  # a handshake that fails looks like a broken server
            await self.close(code=TRY_AGAIN_LATER)
            return
        self.groups_joined = groups
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def fleet_event(self, message: dict) -> None:
        """An archive event (``archive.events``), with the links a page needs to show it."""
        event = dict(message["event"])
        if event.get("type") == "frame":
            event["image_url"] = image_url(event["frame_id"], event["channels"])
            event["frame_url"] = frame_url(event["frame_id"])
        await self.send_json(event)
