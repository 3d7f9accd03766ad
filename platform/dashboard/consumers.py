"""WebSocket consumer that pushes fleet events to signed-in users, within their scope."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from redis.exceptions import RedisError

from access.services import is_admin, visible_devices
from archive.events import FLEET_GROUP, device_group
from archive.policy import watch
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


@database_sync_to_async
def cameras_to_watch(user, wanted: list[str] | None = None) -> list[str]:
    """The cameras a live page of ``user`` shows: all it may see, or those of ``wanted``
    (the page's ``{"watch": [...]}``) among them."""
    devices = visible_devices(user).filter(is_active=True)
    if wanted is not None:
        devices = devices.filter(device_id__in=[str(d) for d in wanted[:1000]])
    return list(devices.values_list("device_id", flat=True))


class LiveConsumer(AsyncJsonWebsocketConsumer):
    groups_joined: list[str]
    watching: list[str]
    _watch_task: asyncio.Task | None = None

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
        self.watching = await cameras_to_watch(user)
        self._watch_task = asyncio.create_task(self._keep_watching())

    async def _keep_watching(self) -> None:
        """Tell the archive, while the page is open, which cameras it shows: they are
        decoded first (``archive.policy``)."""
        while True:
            try:
                await database_sync_to_async(watch)(self.watching)
            except (RedisError, ConnectionError, OSError, TimeoutError) as exc:
                log.warning("cannot mark cameras watched: %s", exc)
            await asyncio.sleep(settings.STRATA_WATCH_TTL_S / 3)

    @classmethod
    async def decode_json(cls, text_data: str):
        try:
            return await super().decode_json(text_data)
        except ValueError:
            log.info("live socket: ignored a message that is not JSON")
            return None

    async def receive_json(self, content, **kwargs) -> None:
        """``{"watch": [device ids]}``: the page shows only these cameras."""
        wanted = content.get("watch") if isinstance(content, dict) else None
        if isinstance(wanted, list):
            self.watching = await cameras_to_watch(self.scope["user"], wanted)
            await database_sync_to_async(watch)(self.watching)

    async def disconnect(self, code: int) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def fleet_event(self, message: dict) -> None:
        """An archive event (``archive.events``), with the links a page needs to show it."""
        event = dict(message["event"])
        if event.get("type") == "frame":
            event["image_url"] = image_url(event["frame_id"], event["channels"])
            event["frame_url"] = frame_url(event["frame_id"])
        await self.send_json(event)
