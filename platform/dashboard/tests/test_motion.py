"""Motion on the archive timeline and event search (issue 18, "Motion that matters"), on the
real PostgreSQL with predicted frames made by the real codec: the activity strips come from
one grouped query per strip, an intra-only camera shows "no motion data", not zeros, and
``?motion=N`` finds the day's frames with at least N % of blocks changed, paged."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from access.services import assign
from archive.models import Frame
from archive.policy import backfill_candidates, is_event
from archive.retention import protected_frames
from archive.services import store_packet
from dashboard import queries
from fleet.models import Device
from fleet.services import provision_device
from mcucoder.bitstream import MOTION_UNKNOWN, parse_packet
from tests.support.packets import fake_packet
from tests.support.predicted import p_stream

pytestmark = pytest.mark.django_db

MOVES = [False, False, False, True, True, False, False, True, False, False, True, False]


def an_hour_ago() -> datetime:
    """The start of the previous full hour: the tests' frames are placed in it."""
    return timezone.localtime().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


def archived(device: Device, packets: list[bytes], hour: datetime) -> list[tuple[Frame, int]]:
    """Store ``packets``, frame i received in minute 3 * i of ``hour``; (frame, the motion
    share its packet carries)."""
    out = []
    for i, raw in enumerate(packets):
        frame = store_packet(device, parse_packet(raw)).frame
        at = hour + timedelta(minutes=3 * i, seconds=5)
        Frame.objects.filter(pk=frame.pk).update(received_at=at)
        frame.refresh_from_db()
        out.append((frame, parse_packet(raw).motion))
    return out


@pytest.fixture
def p_camera():
    device = provision_device(f"motion-{uuid.uuid4().hex[:6]}", site="Motion")
    hour = an_hour_ago()
    return device, hour, archived(device, p_stream(len(MOVES), moves=MOVES), hour)


def known(motion: int) -> int | None:
    return None if motion == MOTION_UNKNOWN else motion


def test_the_strips_carry_each_minutes_and_hours_busiest_frame(p_camera):
    device, hour, frames = p_camera
    shares = [m for _, m in frames]
    assert shares[0] == MOTION_UNKNOWN  # the first key frame has nothing to compare with
    assert len({m for m in shares[1:]}) > 1  # still and moving frames: the codec told apart
    with CaptureQueriesContext(connection) as minute_queries:
        minutes = queries.hour_minutes(device, hour)
    assert len(minute_queries) == 1  # set-based: one grouped query, not one per frame
    assert [(b.frames, b.motion) for b in minutes[::3][: len(frames)]] == [
        (1, known(m)) for m in shares
    ]
    assert all(b.frames == 0 and b.motion is None for b in minutes[1::3])
    hours = queries.day_hours(device, hour.date())
    assert hours[hour.hour].motion == max(known(m) or 0 for m in shares)
    assert queries.has_motion_data(minutes) is True
    assert queries.has_motion_data(minutes[1:3]) is None  # no frame: nothing to say


def test_an_intra_only_camera_has_no_motion_data_not_zeros():
    device = provision_device(f"intra-{uuid.uuid4().hex[:6]}")
    hour = an_hour_ago()
    archived(device, [fake_packet(seq=s) for s in (1, 2, 3)], hour)  # version 1: no motion
    minutes = queries.hour_minutes(device, hour)
    assert sum(b.frames for b in minutes) == 3
    assert all(b.motion is None for b in minutes)
    assert queries.has_motion_data(minutes) is False
    assert not queries.motion_frames(device, hour.date(), 1).exists()


def test_event_search_finds_the_days_frames_over_the_threshold_newest_first(p_camera):
    device, hour, frames = p_camera
    threshold = sorted({m for _, m in frames if known(m)})[-1]  # the busiest frames only
    found = queries.motion_frames(device, hour.date(), threshold)
    expected = [f.seq for f, m in reversed(frames) if known(m) is not None and m >= threshold]
    assert [f.seq for f in found] == expected and expected
    assert all(f.motion >= threshold for f in found)
    lowest = queries.motion_frames(device, hour.date(), 1)
    assert len(lowest) == sum(1 for _, m in frames if known(m))


def test_one_definition_of_an_event_frame_decodes_keeps_and_finds_the_same_frames(
    p_camera, settings
):
    """The decode policy (event frames backfilled first, ``is_event`` at ingest),
    retention (event frames are kept) and the event search agree, whatever
    ``STRATA_EVENT_MOTION`` says."""
    device, hour, frames = p_camera
    for threshold in sorted({m for _, m in frames if known(m)}):
        settings.STRATA_EVENT_MOTION = threshold
        expected = {f.pk for f, m in frames if known(m) is not None and m >= threshold}
        assert expected and len(expected) < len(frames)  # events and frames that are not
        assert {f.pk for f, _ in frames if is_event(f)} == expected
        decoded_first = {f.pk for f in backfill_candidates(100, events=True)}
        assert decoded_first & {f.pk for f, _ in frames} == expected
        kept = set(protected_frames([device.pk]).values_list("pk", flat=True))
        assert kept == expected
        found = queries.motion_frames(device, hour.date())
        assert set(found.values_list("pk", flat=True)) == expected


def test_a_minute_links_to_the_page_showing_its_newest_frame():
    minutes = [queries.Bucket(timezone.now(), n, 0.0) for n in (4, 0, 3, 5)]
    pages = queries.minute_pages(minutes, per_page=5)
    # newest first: minute 3's 5 frames fill page 1, minute 2's 3 begin page 2, minute 0's
    # newest is the 9th newest: page 2.
    assert pages == [2, 2, 2, 1]


@pytest.fixture
def operator(p_camera) -> Client:
    device, _, _ = p_camera
    user = get_user_model().objects.create_user(f"motion-op-{device.pk}", password="pw")
    assign(user, device=device)
    client = Client()
    client.force_login(user)
    return client


def shown(page: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'class="thumb" href="/frames/(\d+)/"', page)]


def test_the_archive_page_draws_motion_and_searches_events(p_camera, operator, monkeypatch):
    device, hour, frames = p_camera
    url = f"/devices/{device.device_id}/archive/"
    where = {"day": hour.date().isoformat(), "hour": str(hour.hour)}
    page = operator.get(url, where).content.decode()
    strip = page[page.index('id="motion-minutes"') :]
    cells = re.findall(r'<a href="\?day=[^"]*&amp;page=(\d+)#thumbs" class="bucket([^"]*)"', strip)
    assert len(cells) == 60
    busy = [c for c in cells if "event" in c[1]]
    events_at = settings.STRATA_EVENT_MOTION
    assert len(busy) == sum(1 for _, m in frames if (known(m) or 0) >= events_at) and busy
    assert f'data-motion="{max(known(m) or 0 for _, m in frames)}"' in page
    assert "No motion data" not in page

    threshold = max(m for _, m in frames if known(m))
    events = operator.get(url, {**where, "motion": str(threshold)})
    expected = [f.pk for f, m in reversed(frames) if known(m) is not None and m >= threshold]
    assert shown(events.content.decode()) == expected
    assert f"Motion ≥ {threshold} %" in events.content.decode()
    assert "data-live-device" not in events.content.decode()  # a search takes no live frames
    monkeypatch.setattr("dashboard.views.ARCHIVE_PAGE", 1)  # paged like the hour's list
    second = operator.get(url, {**where, "motion": "1", "page": "2"}).content.decode()
    with_motion = [f.pk for f, m in reversed(frames) if known(m) is not None and m >= 1]
    assert shown(second) == with_motion[1:2]
    assert f"page 2 of {len(with_motion)}" in second
    for bad in ("0", "101", "lots"):
        assert operator.get(url, {**where, "motion": bad}).status_code == 400


def test_the_archive_page_of_an_intra_only_camera_says_no_motion_data(operator, p_camera):
    device, _, _ = p_camera
    intra = provision_device(f"intra-page-{device.pk}")
    hour = an_hour_ago()
    archived(intra, [fake_packet(seq=s) for s in (1, 2)], hour)
    assign(get_user_model().objects.get(username=f"motion-op-{device.pk}"), device=intra)
    where = {"day": hour.date().isoformat(), "hour": str(hour.hour)}
    page = operator.get(f"/devices/{intra.device_id}/archive/", where).content.decode()
    assert "No motion data for this day" in page and "No motion data for this hour" in page
    assert 'class="timeline motion' not in page and "data-motion" not in page
