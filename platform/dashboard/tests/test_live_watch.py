"""A live page tells the archive which cameras it shows (``archive.policy.watch``), and
nothing more: an open page marks only the cameras it names, and takes them back."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from access.services import assign
from archive import policy
from dashboard.consumers import LiveConsumer
from fleet.models import Device
from fleet.services import provision_device

pytestmark = pytest.mark.django_db(transaction=True)


def watched() -> set[str]:
    policy._watched_cache.clear()
    return policy.watched_device_ids()


def socket_of(user) -> WebsocketCommunicator:
    ws = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    ws.scope["user"] = user
    return ws


def test_a_live_page_watches_the_cameras_it_names_and_takes_them_back(clean_redis):
    tag = uuid.uuid4().hex[:6]
    mine, also, other = (provision_device(f"watch-{n}-{tag}") for n in ("a", "b", "c"))
    operator = get_user_model().objects.create_user(f"watch-op-{tag}")
    assign(operator, device=mine)
    assign(operator, device=also)

    async def scenario() -> None:
        ws = socket_of(operator)
        assert (await ws.connect())[0]
        await ws.receive_nothing(timeout=0.5)
        assert not {mine.device_id, also.device_id} & watched()  # open, but nothing named
        # One it may not see is left out of the answer and of the watched set.
        await ws.send_json_to({"watch": [mine.device_id, also.device_id, other.device_id]})
        answer = await ws.receive_json_from(timeout=5)
        assert answer == {"type": "watching", "cameras": sorted([mine.device_id, also.device_id])}
        assert {mine.device_id, also.device_id} <= watched()
        assert other.device_id not in watched()
        await ws.send_json_to({"watch": [also.device_id]})  # scrolled: one left the screen
        assert (await ws.receive_json_from(timeout=5))["cameras"] == [also.device_id]
        assert also.device_id in watched() and mine.device_id not in watched()
        await ws.disconnect()
        assert also.device_id not in watched()  # the page closed

    async_to_sync(scenario)()


def test_a_camera_stays_watched_while_another_page_shows_it(clean_redis):
    tag = uuid.uuid4().hex[:6]
    camera = provision_device(f"watch-two-{tag}")
    operator = get_user_model().objects.create_user(f"watch-two-{tag}")
    assign(operator, device=camera)

    async def scenario() -> None:
        first, second = socket_of(operator), socket_of(operator)
        for ws in (first, second):
            assert (await ws.connect())[0]
            await ws.send_json_to({"watch": [camera.device_id]})
            await ws.receive_json_from(timeout=5)
        await first.send_json_to({"watch": []})  # its tab was hidden
        assert (await first.receive_json_from(timeout=5))["cameras"] == []
        assert camera.device_id in watched()  # the other page still shows it
        await second.disconnect()
        assert camera.device_id not in watched()
        await first.disconnect()

    async_to_sync(scenario)()


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ("not json", "not JSON"),
        ('{"watch": "cam-1"}', "must be a list of camera ids"),
        ('{"watch": [1, 2]}', "must be a list of camera ids"),
        ('{"watch": [""]}', "must be a list of camera ids"),
        ('{"watch": []], "x": 1}', "not JSON"),
        ('{"watch": [], "extra": 1}', 'expected {"watch": [camera ids]}'),
        ('["cam-1"]', 'expected {"watch": [camera ids]}'),
        ('{"watch": [' + ",".join(['"c"'] * 501) + "]}", "at most 500"),
    ],
)
def test_a_bad_message_gets_a_clear_error_and_the_socket_stays(clean_redis, message, says):
    operator = get_user_model().objects.create_user(f"watch-bad-{uuid.uuid4().hex[:6]}")

    async def scenario() -> None:
        ws = socket_of(operator)
        assert (await ws.connect())[0]
        await ws.send_to(text_data=message)
        answer = await ws.receive_json_from(timeout=5)
        assert answer["type"] == "error" and says in answer["error"], answer
        await ws.send_json_to({"watch": []})  # still open, still answering
        assert await ws.receive_json_from(timeout=5) == {"type": "watching", "cameras": []}
        await ws.disconnect()

    async_to_sync(scenario)()


def test_opening_a_live_view_asks_its_camera_for_a_key_frame(clean_redis):
    tag = uuid.uuid4().hex[:6]
    camera = provision_device(f"watch-key-{tag}")
    operator = get_user_model().objects.create_user(f"watch-key-{tag}")
    assign(operator, device=camera)

    async def scenario() -> None:
        ws = socket_of(operator)
        assert (await ws.connect())[0]
        await ws.send_json_to({"watch": [camera.device_id]})
        await ws.receive_json_from(timeout=5)
        await ws.receive_nothing(timeout=2)  # the request goes out beside the socket
        await ws.disconnect()

    before = Device.objects.get(pk=camera.pk).key_request
    async_to_sync(scenario)()
    assert Device.objects.get(pk=camera.pk).key_request == before + 1
