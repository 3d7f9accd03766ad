"""Every dashboard page, the image endpoint and the decode endpoint respect the user's scope;
admins' controls save, audit and publish."""

from __future__ import annotations

import dataclasses
import io
import re
import uuid
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from PIL import Image

from access.services import assign
from archive.images import current_decoder
from archive.jobs import REDECODE
from archive.services import record_decoded, store_packet
from fleet.models import Device
from fleet.services import provision_device
from mcucoder.bitstream import parse_packet
from tests.support.packets import fake_packet

pytestmark = pytest.mark.django_db


def webp(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buf, format="WEBP")
    return buf.getvalue()


@pytest.fixture
def world():
    """Two cameras with one decoded frame each; an operator assigned only the first."""
    tag = uuid.uuid4().hex[:6]
    mine = provision_device(f"view-mine-{tag}", name="Paddock gate", site="North farm")
    other = provision_device(f"view-other-{tag}", name="Depot road", site="Depot")
    frames = {}
    for device in (mine, other):
        frame = store_packet(device, parse_packet(fake_packet(seq=1, channels=6))).frame
        record_decoded(frame.pk, 6, webp((200, 30, 30)), "image/webp", 3.0)
        frames[device.device_id] = frame
    users = get_user_model()
    operator = users.objects.create_user("view-op", password="pw")
    assign(operator, device=mine)
    admin = users.objects.create_user("view-admin", password="pw", is_staff=True)
    return mine, other, frames[mine.device_id], frames[other.device_id], operator, admin


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_pages_need_sign_in(world):
    mine, *_ = world
    for url in ("/", f"/devices/{mine.device_id}/", f"/devices/{mine.device_id}/archive/"):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_operator_sees_only_assigned_cameras_everywhere(world):
    mine, other, my_frame, other_frame, operator, _ = world
    client = client_for(operator)
    page = client.get("/").content.decode()
    assert "Paddock gate" in page and "Depot road" not in page
    for url in (
        f"/devices/{mine.device_id}/",
        f"/devices/{mine.device_id}/state",
        f"/devices/{mine.device_id}/archive/",
        f"/frames/{my_frame.pk}/",
        f"/frames/{my_frame.pk}/decode?k=6",
        f"/frames/{my_frame.pk}/image?k=6",
    ):
        assert client.get(url).status_code == 200, url
    for url in (
        f"/devices/{other.device_id}/",
        f"/devices/{other.device_id}/state",
        f"/devices/{other.device_id}/archive/",
        f"/frames/{other_frame.pk}/",
        f"/frames/{other_frame.pk}/decode?k=6",
        f"/frames/{other_frame.pk}/image?k=6",
        f"/frames/{other_frame.pk}/image",
    ):
        assert client.get(url).status_code == 404, url


def test_operator_cannot_change_settings(world):
    mine, *_, operator, _ = world
    response = client_for(operator).post(
        f"/devices/{mine.device_id}/controls",
        {"max_kbps": "10", "min_tier": "1", "max_tier": "12", "fps": "1"},
    )
    assert response.status_code == 403
    assert Device.objects.get(pk=mine.pk).max_kbps is None
    assert b"Save and send" not in client_for(operator).get(f"/devices/{mine.device_id}/").content


def test_admin_sees_everything_and_filters(world):
    mine, other, *_, admin = world
    client = client_for(admin)
    page = client.get("/").content.decode()
    assert "Paddock gate" in page and "Depot road" in page
    page = client.get("/", {"site": "Depot"}).content.decode()
    assert "Paddock gate" not in page and "Depot road" in page
    page = client.get("/", {"health": "online"}).content.decode()
    assert "No camera matches" in page  # neither has been seen
    assert client.get(f"/devices/{other.device_id}/").status_code == 200


def test_admin_controls_are_saved_audited_and_published(world):
    mine, *_, admin = world
    client = client_for(admin)
    form = {
        "max_kbps": "48",
        "min_tier": "2",
        "max_tier": "10",
        "tier_override": "",
        "fps": "2",
        "capture_mode": "motion",
        "deadline_ms": "1500",
        "tier_policy": "throughput",
    }
    response = client.post(f"/devices/{mine.device_id}/controls", form, follow=True)
    page = response.content.decode()
    assert "Saved and sent to the camera." in page
    # one version on the page, the current one: the table's and the line under it
    assert '<td data-desired="version">1</td>' in page
    assert "Waiting for the camera to apply version 1…" in page
    mine.refresh_from_db()
    assert (mine.max_kbps, mine.min_tier, mine.max_tier, mine.fps) == (48, 2, 10, 2.0)
    assert (mine.deadline_ms, mine.tier_policy) == (1500, "throughput")
    state = client.get(f"/devices/{mine.device_id}/state").json()
    assert state["desired"] == {
        "version": 1,
        "tier": 10,
        "fps": 2.0,
        "max_kbps": 48,
        "mode": "motion",
        "deadline_ms": 1500,
        "key_request": 0,
    }
    assert state["pending"] and state["reported"] is None
    page = client.get(f"/devices/{mine.device_id}/").content.decode()
    assert "view-admin</strong>: " in page and "max_kbps none → 48" in page  # recent changes
    bad = client.post(
        f"/devices/{mine.device_id}/controls", {**form, "min_tier": "11"}, follow=True
    )
    assert bad.status_code == 400 and b"minimum tier is above" in bad.content
    unknown = client.post(
        f"/devices/{mine.device_id}/controls", {**form, "tier_policy": "magic"}, follow=True
    )
    assert unknown.status_code == 400 and b"magic is not one of the available" in unknown.content


def test_frame_page_has_a_slider_up_to_the_layers_received(world):
    mine, _, my_frame, _, operator, _ = world
    page = client_for(operator).get(f"/frames/{my_frame.pk}/").content.decode()
    assert 'type="range"' in page and 'max="6"' in page and 'value="6"' in page


def test_decode_endpoint_requests_a_missing_k_once(world, monkeypatch):
    _, _, my_frame, _, operator, _ = world
    requested: list[tuple[int, int]] = []

    def queue_job(name: str, frame_id: int, channels: int, queue: str) -> None:
        assert (name, queue) == (REDECODE, "archive")
        requested.append((frame_id, channels))

    monkeypatch.setattr("archive.images.queue_job", queue_job)
    from django.core.cache import cache

    cache.clear()
    client = client_for(operator)
    assert client.get(f"/frames/{my_frame.pk}/decode?k=3").json()["ready"] is False
    assert client.get(f"/frames/{my_frame.pk}/decode?k=3").json()["ready"] is False
    assert requested == [(my_frame.pk, 3)]
    # k above the layers received is capped; the stored k=6 is served at once.
    ready = client.get(f"/frames/{my_frame.pk}/decode?k=12").json()
    assert ready["ready"] and ready["channels"] == 6
    v = urlencode({"v": current_decoder(my_frame.model_id)})
    assert ready["image_url"] == f"/frames/{my_frame.pk}/image?k=6&{v}"


def test_a_redecode_by_another_revision_gets_a_new_image_url(world):
    """Images are served as immutable, so the URL the pages use names the decoder revision
    that made the image: a browser holding the old image fetches the new one."""
    mine, _, _, _, operator, _ = world
    frame = store_packet(mine, parse_packet(fake_packet(seq=2, channels=6))).frame
    record_decoded(frame.pk, 6, webp((0, 0, 200)), "image/webp", 3.0, decoder="retired")
    client = client_for(operator)

    def image_urls() -> set[str]:
        pages = [f"/devices/{mine.device_id}/", f"/devices/{mine.device_id}/archive/"]
        html = "".join(client.get(p).content.decode().replace("&amp;", "&") for p in pages)
        return set(re.findall(rf'src="(/frames/{frame.pk}/image\?[^"]*)"', html))

    (old,) = image_urls()
    assert old == f"/frames/{frame.pk}/image?k=6&v=retired"
    assert "immutable" in client.get(old)["Cache-Control"]
    record_decoded(frame.pk, 6, webp((0, 200, 0)), "image/webp", 3.0)  # the current revision
    (new,) = image_urls()
    assert new != old and new == f"/frames/{frame.pk}/image?k=6&" + urlencode(
        {"v": current_decoder(frame.model_id)}
    )
    assert client.get(f"/frames/{frame.pk}/decode?k=6").json()["image_url"] == new
    fresh = client.get(new)
    assert "immutable" in fresh["Cache-Control"]
    assert Image.open(io.BytesIO(fresh.content)).getpixel((5, 5))[1] > 150  # green: new
    assert client.get(old)["Cache-Control"] == "no-cache"  # a stale URL is not kept


def test_png_download(world):
    _, _, my_frame, _, operator, _ = world
    response = client_for(operator).get(f"/frames/{my_frame.pk}/image?k=6&format=png")
    assert response["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (64, 48)


def test_archive_timeline_lists_the_hour(world):
    mine, _, my_frame, _, operator, _ = world
    page = client_for(operator).get(f"/devices/{mine.device_id}/archive/").content.decode()
    assert f'href="/frames/{my_frame.pk}/"' in page
    assert page.count('class="bucket') >= 24 + 60


def test_activity_charts_come_from_the_archive(world):
    from dashboard.queries import activity
    from dashboard.templatetags.strata import sparkline

    mine, _, my_frame, _, operator, _ = world
    recent = activity(mine, minutes=5)
    assert sum(recent.frames) == 1 and recent.tier[-1] == 6.0
    layer_bytes = sum(3 + i for i in range(6))  # fake_packet's chunk sizes
    assert recent.kbps[-1] == pytest.approx(layer_bytes * 8 / 60 / 1000)
    assert recent.tier[:-1] == [None] * 4
    drawn = sparkline([None, 2.0, 4.0, None, 12.0, 20.0], top=12)
    assert [h for _, _, h in drawn["bars"]] == pytest.approx(
        [22 * 2 / 12, 22 * 4 / 12, 22, 22], abs=0.01
    )
    page = client_for(operator).get(f"/devices/{mine.device_id}/").content.decode()
    assert page.count('<svg class="spark wide"') == 3


def test_overview_activity_is_three_queries_for_all_cameras(world, django_assert_num_queries):
    from control.services import record_telemetry
    from dashboard.queries import activities

    mine, other, *_ = world
    record_telemetry(mine, {"throughput_kbps": 42.0, "backlog": 1, "puback_ms": {"mean": 120.0}})
    with django_assert_num_queries(3):
        recent = activities([mine, other], minutes=3)
    assert sum(recent[mine.pk].frames) == 1 and sum(recent[other.pk].frames) == 1
    assert recent[mine.pk].link_kbps[-1] == 42.0 and recent[mine.pk].puback_ms[-1] == 120.0
    assert set(recent[other.pk].link_kbps) == {None}


def test_camera_page_says_why_the_controller_chose_its_tier_in_plain_words(world):
    from django.utils import timezone

    from control.models import SitePolicy, TierChange
    from fleet.services import apply_controller_tier

    mine, *_, operator, _ = world
    decision = {
        "tier": 7,
        "reason": "holding",
        "inputs": {"tier": 7, "estimate_kbps": 84.2, "need_kbps": 61.0, "buffer_fill": 0.0},
    }
    apply_controller_tier(mine, 7, decision)
    TierChange.objects.create(
        device=mine, at=timezone.now(), from_tier=9, to_tier=7, policy="robust", reason="r"
    )
    SitePolicy.objects.create(site=mine.site, policy="throughput")
    page = client_for(operator).get(f"/devices/{mine.device_id}/").content.decode()
    assert "Link estimate 84 kbit/s; tier 7 needs 61 kbit/s (72 %): holding" in page
    assert "estimate_kbps" not in page  # not the raw dictionary
    assert "<strong>throughput</strong> <small>(the site's default)" in page
    assert "0.1 switches/min" in page and "tier 9 → 7: r" in page
    overview = client_for(operator).get("/").content.decode()
    assert "0.1 switches/min" in overview


def test_archive_timeline_marks_offline_periods(world):
    from datetime import datetime, timedelta

    from django.utils import timezone

    from dashboard.queries import day_hours
    from fleet.models import ConnectionChange
    from fleet.services import set_online

    mine, *_ = world
    day = timezone.now().date() - timedelta(days=1)
    tz = timezone.get_current_timezone()
    midnight = datetime.combine(day, datetime.min.time(), tzinfo=tz)

    def at(hours: int, minutes: int = 0) -> datetime:
        return midnight + timedelta(hours=hours, minutes=minutes)

    set_online(mine.device_id, True, at(1))
    set_online(mine.device_id, True, at(2))  # no change of state: not recorded
    set_online(mine.device_id, False, at(3, 30))
    set_online(mine.device_id, True, at(5))
    assert ConnectionChange.objects.filter(device=mine).count() == 3
    offline = [round(b.offline, 2) for b in day_hours(mine, day)]
    assert offline[:3] == [0, 0, 0] and offline[3] == 0.5 and offline[4] == 1.0
    assert offline[5:] == [0.0] * 19


def test_why_tier_names_the_tier_in_force_and_why_in_plain_words(world):
    """After an admin's cap the controller steps a camera down: the page asks "Why tier 1?"
    (not the tier before) and answers with the cap, never "stepping up"."""
    from control.policies import LinkState, RobustController
    from control.services import decide_tier
    from fleet.services import update_controls

    mine, *_, operator, admin = world
    sizes = {k: 36.0 + 200 * k for k in range(1, 13)}  # 1 frame/s: tier 12 needs 19.5 kbit/s
    state = LinkState([400.0] * 5, 0, 16, 50.0, sizes, 1.0, 12, 600.0)
    decide_tier(mine, RobustController(), state)
    mine.refresh_from_db()
    page = client_for(operator).get(f"/devices/{mine.device_id}/").content.decode()
    assert "Why tier 12?" in page
    update_controls(mine, admin, max_kbps=3)  # tier 1 needs 1.9 kbit/s, tier 2 3.5
    decision = decide_tier(mine, RobustController(), dataclasses.replace(state, tier=12))
    assert decision.tier == 1
    mine.refresh_from_db()
    page = client_for(operator).get(f"/devices/{mine.device_id}/").content.decode()
    assert "Why tier 1?" in page and "Why tier 12?" not in page
    assert "the cap 3 kbit/s allows tier 1 at most: stepping down" in page
    assert "stepping up" not in page and "estimate_kbps" not in page
    update_controls(mine, admin, min_tier=2)  # the admin's floor over the controller's choice
    page = client_for(operator).get(f"/devices/{mine.device_id}/").content.decode()
    assert "Why tier 2?" in page and "The admin&#x27;s minimum tier is 2" in page
    update_controls(mine, admin, tier_override=5, min_tier=1)
    page = client_for(operator).get(f"/devices/{mine.device_id}/").content.decode()
    assert "Why tier 5?" in page and "An admin fixed the tier at 5" in page


def test_a_tile_compares_the_cap_with_its_own_window_not_an_hours_mean(world):
    """The cap holds over every 2 s of capture time: the tile shows the busiest such window
    of the last minute beside it, and the last minute's mean, not the hour's."""
    from dashboard.queries import recent_rates

    mine, other, *_, admin = world
    base = 1_700_000_010_000  # 10 s after the world's frame
    for seq, at in enumerate((0, 500, 1000, 4000), start=2):  # 3 frames within 2 s
        packet = parse_packet(fake_packet(seq=seq, channels=12))
        store_packet(mine, dataclasses.replace(packet, capture_time_ms=base + at))
    per_frame = 29 + 4 + sum(3 + i for i in range(12)) + 12  # header, CRC, chunks, lengths
    rate = recent_rates([mine, other])[mine.pk]
    assert rate.peak_kbps == pytest.approx(3 * per_frame * 8 / 1000 / 2)
    first = 29 + 4 + sum(3 + i for i in range(6)) + 6  # the world's frame: 6 channels
    assert rate.kbps == pytest.approx((4 * per_frame + first) * 8 / 1000 / 60)
    Device.objects.filter(pk=mine.pk).update(max_kbps=1)
    page = client_for(admin).get("/").content.decode()
    peak = f"{rate.peak_kbps:.1f}"
    assert f'<span data-field="peak-kbps">{peak}</span> <small>(2 s)</small> of cap 1' in page
    assert 'class="rate over"' in page  # 1.8 kbit/s in 2 s is over a 1 kbit/s cap
    # The camera applies a cap: the frames received before are not held to it.
    from django.utils import timezone

    Device.objects.filter(pk=mine.pk).update(reported_at=timezone.now())
    mine.refresh_from_db()
    assert recent_rates([mine])[mine.pk].peak_kbps == 0.0
    page = client_for(admin).get("/").content.decode()
    assert '<span data-field="peak-kbps">0.0</span>' in page and "rate over" not in page


def test_the_archive_hour_is_paged_newest_first_and_its_first_page_is_live(world):
    from datetime import timedelta

    from django.utils import timezone

    from archive.models import Frame
    from dashboard.views import ARCHIVE_PAGE

    mine, _, first, _, operator, _ = world
    for seq in range(2, 131):
        store_packet(mine, parse_packet(fake_packet(seq=seq, channels=2)))
    start = timezone.localtime(first.received_at).replace(minute=0, second=0, microsecond=0)
    Frame.objects.filter(device=mine).update(received_at=start + timedelta(minutes=30))
    client = client_for(operator)
    url = f"/devices/{mine.device_id}/archive/"
    hour = {"day": start.date().isoformat(), "hour": str(start.hour)}
    page = client.get(url, hour).content.decode()
    now = timezone.now()
    shown = re.findall(r'class="thumb" href="/frames/(\d+)/"', page)
    newest = Frame.objects.filter(device=mine).order_by("-seq")
    assert shown == [str(f.pk) for f in newest[:ARCHIVE_PAGE]]  # 60 of 130, newest first
    assert '<span id="frame-count">130</span> frames' in page and "page 1 of 3" in page
    going_on = start <= now < start + timedelta(hours=1)
    assert ('data-live-device="' + mine.device_id + '"' in page) == going_on
    last = client.get(url, {**hour, "page": "3"}).content.decode()
    assert re.findall(r'class="thumb" href="/frames/(\d+)/"', last) == [
        str(f.pk) for f in newest[2 * ARCHIVE_PAGE :]
    ]
    assert "data-live-device" not in last  # only the first page takes new frames
    assert f"?day={hour['day']}&amp;hour={hour['hour']}&amp;page=2" in last  # the pager
    assert client.get(url, {**hour, "page": "x"}).status_code == 400
