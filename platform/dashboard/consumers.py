"""WebSocket consumer that pushes fleet events to signed-in users, within their scope."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django import db
from django.conf import settings
from redis.exceptions import RedisError

from access.services import is_admin, visible_devices
from archive.events import FLEET_GROUP, device_group
from archive.policy import unwatch, watch
from dashboard.services import frame_url, image_url
from fleet.models import Device
from fleet.services import KeyFrameReason, request_key_frames

log = logging.getLogger(__name__)

TRY_AGAIN_LATER = 1013  # WebSocket close code: the service is away for now (live.js retries)


@database_sync_to_async
def groups_for(user) -> list[str]:
    """Admins follow the whole fleet; operators each of their cameras (fixed at connect:
    a page reconnects after an assignment changes)."""
    if is_admin(user):
        return [FLEET_GROUP]
    return [device_group(d) for d in visible_devices(user).values_list("device_id", flat=True)]


WATCH_LIMIT = 500  # cameras one page may name: more than any page shows at once
_NOT_JSON = object()


def parse_watch(content: object) -> list[str]:
    """The camera ids of a page's ``{"watch": [device ids]}`` (the cameras it shows now:
    ``live.js``); ValueError saying what is wrong with any other message."""
    if not isinstance(content, dict) or set(content) != {"watch"}:
        raise ValueError('expected {"watch": [camera ids]}')
    wanted = content["watch"]
    if not isinstance(wanted, list) or not all(isinstance(d, str) and d for d in wanted):
        raise ValueError('"watch" must be a list of camera ids (non-empty strings)')
    if len(wanted) > WATCH_LIMIT:
        raise ValueError(f'"watch" names {len(wanted)} cameras: at most {WATCH_LIMIT}')
    return sorted(set(wanted))


@database_sync_to_async
def follow(user, viewer: str, wanted: list[str], before: list[str]) -> list[Device]:
    """The page of ``viewer`` now shows ``wanted``: those of its cameras ``user`` may see
    are watched (decoded first, ``archive.policy``), those it stopped showing are not.
    Returns the cameras watched."""
    devices = list(visible_devices(user).filter(is_active=True, device_id__in=wanted))
    shown = {d.device_id for d in devices}
    unwatch([d for d in before if d not in shown], viewer)
    watch(shown, viewer)
    return devices


@database_sync_to_async
def stop_following(viewer: str, watching: list[str]) -> None:
    unwatch(watching, viewer)


def ask_key_frames(devices: list[Device]) -> None:
    """A live view opened: its cameras send a key frame next, so that the view starts at
    once rather than at a predicted camera's next key frame (``fleet.services``)."""
    try:
        request_key_frames(devices, KeyFrameReason.LIVE)
    except Exception as exc:  # a live view works without it; the next viewer asks again
        log.warning("cannot ask for key frames: %s", exc)
    finally:
        db.connection.close()  # a worker thread of the pool, not the consumers' own


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """Live events of the cameras a user may see; the cameras its page shows right now
    (``{"watch": [...]}``, nothing until the page says) are watched."""

    groups_joined: list[str]
    watching: list[str]
    _watch_task: asyncio.Task | None = None

    async def connect(self) -> None:
        self.groups_joined = []
        self.watching = []
        self._asking: set[asyncio.Task] = set()
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
        self._watch_task = asyncio.create_task(self._keep_watching())

    async def _keep_watching(self) -> None:
        """Tell the archive, while the page is open, which cameras it shows: they are
        decoded first (``archive.policy``)."""
        while True:
            await asyncio.sleep(settings.STRATA_WATCH_TTL_S / 3)
            try:
                await database_sync_to_async(watch)(self.watching, self.channel_name)
            except (RedisError, ConnectionError, OSError, TimeoutError) as exc:
                log.warning("cannot mark cameras watched: %s", exc)

    @classmethod
    async def decode_json(cls, text_data: str):
        try:
            return await super().decode_json(text_data)
        except ValueError:
            return _NOT_JSON

    async def receive_json(self, content, **kwargs) -> None:
        """``{"watch": [device ids]}``: the page shows these cameras now (``[]``: none,
        e.g. its tab is hidden). Answered ``{"type": "watching", "cameras": [...]}`` (those
        of them this user may see), or ``{"type": "error", "error": ...}``."""
        try:
            if content is _NOT_JSON:
                raise ValueError('not JSON: expected {"watch": [camera ids]}')
            wanted = parse_watch(content)
        except ValueError as exc:
            log.info("live socket: refused a message: %s", exc)
            await self.send_json({"type": "error", "error": str(exc)})
            return
        before = self.watching
        try:
            devices = await follow(self.scope["user"], self.channel_name, wanted, before)
        except (RedisError, ConnectionError, OSError, TimeoutError) as exc:
            log.warning("cannot mark cameras watched: %s", exc)
            await self.send_json({"type": "error", "error": "live view unavailable, retrying"})
            return
        self.watching = sorted(d.device_id for d in devices)
        await self.send_json({"type": "watching", "cameras": self.watching})
        opened = [d for d in devices if d.device_id not in before]
        if opened:  # off this socket's path: a slow broker must not hold the page up
            asking = asyncio.create_task(
                database_sync_to_async(ask_key_frames, thread_sensitive=False)(opened)
            )
            self._asking.add(asking)  # kept until done (the loop holds tasks weakly)
            asking.add_done_callback(self._asking.discard)

    async def disconnect(self, code: int) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
        if getattr(self, "watching", None):
            with contextlib.suppress(RedisError, ConnectionError, OSError, TimeoutError):
                await stop_following(self.channel_name, self.watching)
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def fleet_event(self, message: dict) -> None:
        """An archive event (``archive.events``), with the links a page needs to show it."""
        event = dict(message["event"])
        if event.get("type") == "frame":
            event["image_url"] = image_url(event["frame_id"], event["channels"], event["decoder"])
            event["frame_url"] = frame_url(event["frame_id"])
        await self.send_json(event)
