"""The dashboard as a product, in a real browser: the admin area end to end (a person added,
scoped and signing in with the password shown once; a camera provisioned; the audit log),
the archive and a camera page taking new frames live, and the quality slider on screen."""

from __future__ import annotations

import io
import threading
import uuid

import pytest
from PIL import Image

from tests.browser.helpers import screenshot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def decoded_frame(device, seq: int, colour=(40, 110, 70)):
    """A frame archived and decoded (an image the browser can show), as the worker leaves it."""
    from archive.models import DecodedImage
    from archive.services import record_decoded, store_packet
    from mcucoder.bitstream import parse_packet
    from tests.support.packets import fake_packet

    frame = store_packet(device, parse_packet(fake_packet(seq=seq, width=320, height=240))).frame
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), colour).save(buf, format="WEBP")
    decoded, _ = record_decoded(frame.pk, 12, buf.getvalue(), "image/webp", 2.0)
    return DecodedImage.objects.select_related("frame__device").get(pk=decoded.pk)


def announce(decoded) -> None:
    """What the decode worker does next: "frame decoded" to the pages over Redis. From a
    thread of its own: Playwright keeps an event loop on this one."""
    from archive.events import frame_decoded

    failures: list[BaseException] = []

    def send() -> None:
        try:
            frame_decoded(decoded)
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=send)
    thread.start()
    thread.join(30)
    assert not failures and not thread.is_alive()


def test_admin_area_people_cameras_and_audit(page, web, make_user, browser):
    from fleet.services import provision_device

    tag = uuid.uuid4().hex[:6]
    north = provision_device(f"yard-{tag}", name="Yard gate", site=f"North {tag}")
    provision_device(f"road-{tag}", name="Depot road", site=f"Depot {tag}")
    make_user(f"boss-{tag}", staff=True)

    sign_in(page, web, f"boss-{tag}")
    page.click("text=Admin")
    page.wait_for_url(f"{web}/manage/")
    page.fill("#add-person input[name=username]", f"ana-{tag}")
    page.select_option("#add-person select[name=role]", "operator")
    page.click("#add-person button")
    password = page.locator("#secret").inner_text()
    assert len(password) >= 16
    screenshot(page, "8-admin-password-once")
    page.click("text=Done")
    page.fill("#add-scope input[name=site]", north.site)
    page.click("#add-scope button")
    page.wait_for_selector(f"text=now sees every camera of {north.site}")
    screenshot(page, "9-admin-person")

    page.click("nav.manage-tabs >> text=Cameras")
    page.fill("#add-camera input[name=device_id]", f"barn-{tag}")
    page.fill("#add-camera input[name=name]", "Barn door")
    page.fill("#add-camera input[name=site]", north.site)
    page.click("#add-camera button")
    assert f'"device_id": "barn-{tag}"' in page.locator("#secret").inner_text()
    page.click("text=Done")
    row = page.locator(f'tr[data-camera="barn-{tag}"]')
    assert row.locator("text=active").first.is_visible()
    screenshot(page, "10-admin-cameras")

    page.click("nav.manage-tabs >> text=Audit log")
    log = page.locator("#audit")
    for action in ("user.create", "user.scope.add", "device.credentials.issue"):
        assert log.locator(f"td:text-is('{action}')").count() == 1, action
    page.select_option("select[name=camera]", f"barn-{tag}")
    page.click("#audit-filters button")
    assert log.locator("tbody tr").count() == 1
    screenshot(page, "11-admin-audit")

    # The new operator signs in with the password shown once and sees their site only.
    context = browser.new_context(viewport={"width": 1024, "height": 768})
    try:
        operator = context.new_page()
        sign_in(operator, web, f"ana-{tag}", password)  # the password the admin was shown
        assert operator.locator("text=Yard gate").is_visible()
        assert operator.locator("text=Barn door").is_visible()  # a new camera of their site
        assert operator.locator("text=Depot road").count() == 0
        assert operator.locator("text=Admin").count() == 0
        response = operator.goto(f"{web}/manage/")
        assert response.status == 403 and operator.locator("h1").inner_text() == "Not allowed"
    finally:
        context.close()


def test_archive_and_camera_page_take_new_frames_live(page, web, make_user):
    from django.utils import timezone

    from fleet.services import provision_device

    tag = uuid.uuid4().hex[:6]
    device = provision_device(f"live-{tag}", name="Paddock gate", site="North farm")
    first = decoded_frame(device, 1)
    make_user(f"live-admin-{tag}", staff=True)
    sign_in(page, web, f"live-admin-{tag}")

    now = timezone.localtime(first.frame.received_at)
    page.goto(f"{web}/devices/{device.device_id}/archive/?day={now:%Y-%m-%d}&hour={now.hour}")
    page.wait_for_selector("#live-state.connected")
    assert page.locator(".thumb").count() == 1
    second = decoded_frame(device, 2, colour=(160, 120, 60))
    announce(second)
    newest = page.locator(".thumb").first
    newest.wait_for()
    page.wait_for_selector(f'.thumb[data-frame="{second.frame_id}"]')
    assert newest.get_attribute("data-frame") == str(second.frame_id)  # at the top
    assert page.locator(".thumb").count() == 2
    assert page.locator("#frame-count").inner_text() == "2"
    announce(second)  # decoded again (another k): not a second thumbnail
    page.wait_for_timeout(300)
    assert page.locator(".thumb").count() == 2
    screenshot(page, "12-archive-live")

    page.goto(f"{web}/devices/{device.device_id}/")
    page.wait_for_selector("#live-state.connected")
    rows = page.locator("#recent-frames tr")
    assert rows.count() == 2
    third = decoded_frame(device, 3, colour=(90, 90, 160))
    announce(third)
    page.wait_for_selector(f'#recent-frames tr[data-frame="{third.frame_id}"]')
    assert rows.first.get_attribute("data-frame") == str(third.frame_id)
    assert rows.first.locator("td").first.inner_text() == "#3"
    assert page.locator("img.live-frame").get_attribute("data-frame-id") == str(third.frame_id)


@pytest.mark.parametrize(
    "viewport", [{"width": 1280, "height": 900}, {"width": 1024, "height": 768}]
)
def test_the_quality_slider_is_on_screen_without_scrolling(page, web, make_user, viewport):
    from access.services import assign
    from fleet.services import provision_device

    tag = uuid.uuid4().hex[:6]
    device = provision_device(f"fold-{tag}", name="Paddock gate", site="North farm")
    decoded = decoded_frame(device, 1)
    assign(make_user(f"fold-{tag}"), device=device)  # an operator of this camera
    page.set_viewport_size(viewport)
    sign_in(page, web, f"fold-{tag}")
    page.goto(f"{web}/frames/{decoded.frame_id}/")
    page.wait_for_function("() => document.getElementById('frame-image').complete")
    slider = page.locator("#quality").bounding_box()
    image = page.locator("#frame-image").bounding_box()
    assert slider["y"] + slider["height"] <= viewport["height"], (slider, viewport)
    assert image["height"] >= 0.5 * viewport["height"]  # the image gave up height, not all of it
    screenshot(page, f"13-frame-slider-{viewport['width']}x{viewport['height']}")
