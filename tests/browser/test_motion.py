"""Motion on the archive page in a real browser (issue 18): the activity strip is drawn
(bars sized by the page's script), a click on a busy minute jumps to the page with its
frames, the event search control filters the list, and an intra-only camera says "no
motion data"."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from tests.browser.helpers import screenshot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MOVES = [False, False, True, False, True, True, False, False, True, False]


def test_the_activity_strip_jumps_and_the_event_search_filters(page, web, make_user):
    from django.conf import settings
    from django.utils import timezone

    from access.services import assign
    from archive.models import Frame
    from archive.services import store_packet
    from fleet.services import provision_device
    from mcucoder.bitstream import MOTION_UNKNOWN, parse_packet
    from tests.support.packets import fake_packet
    from tests.support.predicted import p_stream

    tag = uuid.uuid4().hex[:6]
    camera = provision_device(f"motion-{tag}", name="Barn yard", site="North farm")
    intra = provision_device(f"intra-{tag}", name="Paddock gate", site="North farm")
    hour = timezone.localtime().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    motion = {}  # frame pk -> its packet's motion share (None: unknown)
    for i, raw in enumerate(p_stream(len(MOVES), moves=MOVES)):  # minutes 0, 4, 8, ...
        frame = store_packet(camera, parse_packet(raw)).frame
        Frame.objects.filter(pk=frame.pk).update(received_at=hour + timedelta(minutes=4 * i))
        share = parse_packet(raw).motion
        motion[frame.pk] = None if share == MOTION_UNKNOWN else share
    # the newest page of the hour (60 frames) is all frames of its last minute
    for seq in range(100, 160):
        frame = store_packet(camera, parse_packet(fake_packet(seq=seq, channels=2))).frame
        Frame.objects.filter(pk=frame.pk).update(received_at=hour + timedelta(minutes=59))
    for seq in (1, 2):
        frame = store_packet(intra, parse_packet(fake_packet(seq=seq, channels=2))).frame
        Frame.objects.filter(pk=frame.pk).update(received_at=hour + timedelta(minutes=seq))
    user = make_user(f"motion-op-{tag}")
    assign(user, device=camera)
    assign(user, device=intra)
    sign_in(page, web, f"motion-op-{tag}")

    where = f"?day={hour:%Y-%m-%d}&hour={hour.hour}"
    page.goto(f"{web}/devices/{camera.device_id}/archive/{where}")
    cells = page.locator("#motion-minutes .bucket")
    assert cells.count() == 60
    events = [pk for pk, m in motion.items() if m is not None and m >= settings.STRATA_EVENT_MOTION]
    assert page.locator("#motion-minutes .bucket.event").count() == len(events) > 0
    busiest = max(m for m in motion.values() if m is not None)
    bar = page.locator(f'#motion-minutes .bucket[data-motion="{busiest}"] .bar').first
    cell = page.locator(f'#motion-minutes .bucket[data-motion="{busiest}"]').first
    ratio = bar.bounding_box()["height"] / cell.bounding_box()["height"]
    assert abs(ratio - busiest / 100) < 0.1, ratio  # sized by archive.js from data-height
    assert page.locator("#motion-hours .bucket.event").count() == 1  # the hour with motion
    screenshot(page, "14-archive-motion")

    # A click on the first busy minute: the page holding its frame (the 60 newer frames of
    # minute 59 fill page 1).
    page.locator("#motion-minutes .bucket.event").first.click()
    page.wait_for_url("**page=2#thumbs")
    first_event = min(events, key=lambda pk: Frame.objects.get(pk=pk).received_at)
    assert page.locator(f'.thumb[href="/frames/{first_event}/"]').is_visible()

    # Event search: only the frames at or above the threshold, newest first.
    page.fill(".event-search input[name=motion]", str(busiest))
    page.click(".event-search button")
    page.wait_for_url(f"**motion={busiest}*")
    found = [
        int(h.split("/")[2])
        for h in page.locator(".thumb").evaluate_all("ts => ts.map(t => t.getAttribute('href'))")
    ]
    assert found == sorted((pk for pk, m in motion.items() if m == busiest), reverse=True)
    assert page.locator("h2", has_text=f"Motion ≥ {busiest} %").is_visible()

    page.goto(f"{web}/devices/{intra.device_id}/archive/{where}")
    assert page.locator("#motion-minutes").inner_text().startswith("No motion data")
    assert page.locator(".timeline.motion").count() == 0
