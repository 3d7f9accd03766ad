"""A live page tells the archive which cameras it shows (``archive.policy.watch``)."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from access.services import assign
from archive import policy
from dashboard.consumers import LiveConsumer
from fleet.services import provision_device

pytestmark = pytest.mark.django_db(transaction=True)


def watched() -> set[str]:
    policy._watched_cache.clear()
    return policy.watched_device_ids()


def test_a_live_page_marks_its_cameras_watched(clean_redis):
    tag = uuid.uuid4().hex[:6]
    mine, also, other = (provision_device(f"watch-{n}-{tag}") for n in ("a", "b", "c"))
    operator = get_user_model().objects.create_user(f"watch-op-{tag}")
    assign(operator, device=mine)
    assign(operator, device=also)

    async def scenario() -> None:
        ws = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
        ws.scope["user"] = operator
        assert (await ws.connect())[0]
        await ws.receive_nothing(timeout=0.5)  # the consumer marks them
        assert {mine.device_id, also.device_id} <= watched()
        assert other.device_id not in watched()  # not this operator's camera
        # The page says it shows one camera; one it may not see is ignored.
        await ws.send_json_to({"watch": [also.device_id, other.device_id]})
        await ws.send_to(text_data="not json")  # ignored, the socket stays
        await ws.receive_nothing(timeout=0.5)
        assert other.device_id not in watched()
        await ws.disconnect()

    async_to_sync(scenario)()
