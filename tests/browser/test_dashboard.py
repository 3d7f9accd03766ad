"""The dashboard in a real browser: sign in, a live frame from a simulated camera, the
quality slider, a bitrate cap the camera applies, and an operator kept to their cameras."""

from __future__ import annotations

import uuid

import pytest

from tests.browser.helpers import screenshot, sign_in
from tests.support.processes import camera_args

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Sums the pixels the browser decoded, so "the image changed" means what a person sees.
PIXEL_SUM = """img => {
  const c = document.createElement("canvas");
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let s = 0; for (let i = 0; i < d.length; i += 1) s += d[i];
  return s;
}"""
LOADED = "img => img.complete && img.naturalWidth > 0"


def test_live_frame_quality_slider_and_bitrate_cap(
    page, web, make_user, ingest_process, decoder_worker_process, service_env, spawn
):
    from fleet.models import Device
    from fleet.services import provision_device

    device_id = f"browser-{uuid.uuid4().hex[:8]}"
    provision_device(device_id, name="Browser gate", site="Test farm")
    make_user("browser-admin", staff=True)

    sign_in(page, web, "browser-admin")
    page.goto(f"{web}/devices/{device_id}/")
    page.wait_for_selector("#live-state.connected")  # subscribed before the camera starts
    assert page.locator(".placeholder").is_visible()

    camera = spawn(
        "camera",
        # long enough for a loaded machine: it stopped before the cap reached it (stopped below)
        camera_args(device_id, service_env["MQTT_URL"], "--fps", "1", "--duration", "900"),
        service_env,
    )

    # A live frame arrives over the WebSocket and replaces the placeholder.
    live = page.locator("img.live-frame")
    live.wait_for(timeout=90_000)
    page.wait_for_function(
        "() => { const i = document.querySelector('img.live-frame');"
        " return i && i.complete && i.naturalWidth === 224; }",
        timeout=30_000,
    )
    assert "k=12" in live.get_attribute("src")
    page.wait_for_function(  # the bitrate follows the frames as they arrive
        "() => document.querySelector('[data-field=kbps]').textContent !== '0.0'"
    )
    frame_id = live.get_attribute("data-frame-id")
    screenshot(page, "1-camera-live")

    # The archived frame at k=12, then at k=3 after moving the slider: another image.
    page.goto(f"{web}/frames/{frame_id}/")
    image = page.locator("#frame-image")
    page.wait_for_function(f"() => ({LOADED})(document.getElementById('frame-image'))")
    full = image.evaluate(PIXEL_SUM)
    page.locator("#quality").fill("3")
    assert page.locator("#k-value").inner_text() == "k = 3 of 12"
    page.wait_for_selector('#frame-image[data-k="3"]', timeout=60_000)
    page.wait_for_function(f"() => ({LOADED})(document.getElementById('frame-image'))")
    assert "k=3" in image.get_attribute("src")
    assert image.evaluate(PIXEL_SUM) != full
    screenshot(page, "2-frame-k3")
    page.click("#compare")  # side by side with another k (k // 3 = 4 to start)
    page.wait_for_selector('.pane.compare img[data-k="4"]', timeout=60_000)
    page.wait_for_function(f"() => ({LOADED})(document.querySelector('.pane.compare img'))")
    screenshot(page, "3-frame-compare")
    page.reload()  # now that later frames are archived, there is a next one
    page.locator('a[rel="next"]').wait_for()
    page.click(".hint")  # arrows on the focused slider change k; elsewhere they scrub
    page.keyboard.press("ArrowRight")  # the next frame, at the same k
    page.wait_for_url(lambda url: f"/frames/{frame_id}/" not in url and url.endswith("?k=3"))
    assert page.locator("#k-value").inner_text() == "k = 3 of 12"
    page.wait_for_function(  # a re-decode on the archive queue: slow on a loaded machine
        f"() => ({LOADED})(document.getElementById('frame-image'))", timeout=60_000
    )
    page.click("#compare")
    page.click("summary")  # the 12 latent channel maps, loaded when opened
    page.wait_for_function(f"() => ({LOADED})(document.querySelector('.latents img'))")
    screenshot(page, "3b-frame-latents")

    # An admin caps the bitrate; the camera applies it and reports it back (through ingest).
    page.goto(f"{web}/devices/{device_id}/")
    page.fill('input[name="max_kbps"]', "24")
    page.click("text=Save and send to the camera")
    page.wait_for_selector("text=Saved and sent to the camera.")
    page.wait_for_selector("#applied .ok", timeout=30_000)
    # the cap's version: after the key frame the opened live view asked for (a version too)
    version = Device.objects.get(device_id=device_id).desired_version
    assert version >= 1
    assert page.locator("#applied").inner_text() == f"Version {version} applied by the camera."
    assert page.locator('[data-reported="max_kbps"]').inner_text() == "24"
    assert page.locator('[data-reported="version"]').inner_text() == str(version)
    reported = Device.objects.get(device_id=device_id).reported
    assert reported["max_kbps"] == 24.0 and reported["version"] == version
    screenshot(page, "4-camera-cap-applied")
    page.goto(f"{web}/devices/{device_id}/archive/")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.thumb img')].every(i => i.complete)"
    )
    screenshot(page, "5-archive")
    page.select_option('select[name="channels"]', "6")
    page.click(".export-form button")  # an MP4 of this hour at k=6, built by the worker
    page.wait_for_url(f"{web}/exports/")
    page.locator("a.button", has_text="MP4").wait_for(timeout=60_000)  # the page refreshes
    screenshot(page, "5b-exports")
    page.goto(f"{web}/")
    screenshot(page, "6-overview")
    page.set_viewport_size({"width": 768, "height": 1024})  # the tablet, portrait
    page.goto(f"{web}/devices/{device_id}/")
    screenshot(page, "6b-camera-portrait")
    camera.stop()


def test_operator_is_denied_a_camera_not_assigned(page, web, make_user):
    from access.services import assign
    from archive.services import record_decoded, store_packet
    from fleet.services import provision_device
    from mcucoder.bitstream import parse_packet
    from tests.support.packets import fake_packet

    tag = uuid.uuid4().hex[:6]
    mine = provision_device(f"op-mine-{tag}", name="Assigned gate", site="North farm")
    other = provision_device(f"op-other-{tag}", name="Forbidden road", site="Depot")
    frame = store_packet(other, parse_packet(fake_packet(seq=1))).frame
    record_decoded(frame.pk, 12, b"RIFF....WEBP", "image/webp", 1.0)
    assign(make_user("browser-operator"), device=mine)

    sign_in(page, web, "browser-operator")
    assert page.locator("text=Assigned gate").is_visible()
    assert page.locator("text=Forbidden road").count() == 0
    assert page.locator(".role").inner_text() == "operator"
    screenshot(page, "7-operator-overview")

    response = page.goto(f"{web}/devices/{other.device_id}/")
    assert response.status == 404
    for url in (f"/frames/{frame.pk}/", f"/frames/{frame.pk}/image?k=12"):
        assert page.request.get(web + url).status == 404
    response = page.goto(f"{web}/devices/{mine.device_id}/")
    assert response.status == 200
    assert page.locator("text=Save and send").count() == 0  # no admin controls
