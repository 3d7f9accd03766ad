"""The live page names the cameras on screen (``live.js``: ``{"watch": [ids]}``), and the
platform's watched set (``archive.policy``, in the real Redis) follows it: an open overview
of many cameras watches the tiles in view, not all of them; scrolling moves the set; a
hidden tab watches none; a camera page watches its camera; a tile added after the page
loaded is watched once in view, and no longer once removed."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.browser.helpers import sign_in

pytestmark = [pytest.mark.e2e]

# The cameras whose tile is inside the viewport right now, as a person sees the page.
TILES_IN_VIEW = """() => [...document.querySelectorAll('.tile[data-device]')]
  .filter(el => { const r = el.getBoundingClientRect();
                  return r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth; })
  .map(el => el.dataset.device).sort()"""
# A tile put first on the overview after the page loaded, as a live update or a page of
# tiles fetched later would: a copy of the first tile, for another camera.
ADD_TILE = """id => {
  const first = document.querySelector('.tile[data-device]');
  const tile = first.cloneNode(true);
  tile.dataset.device = id;
  tile.querySelector('strong').textContent = id;
  first.parentNode.prepend(tile);
}"""
# Headless Chromium keeps a tab visible; the page is told it is hidden (or shown again) the
# way a browser does it: document.visibilityState changes, then "visibilitychange" fires.
SET_VISIBILITY = """state => {
  Object.defineProperty(document, "visibilityState", {configurable: true, get: () => state});
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def watched(prefix: str) -> set[str]:
    from archive import policy

    policy._watched_cache.clear()
    return {d for d in policy.watched_device_ids() if d.startswith(prefix)}


def wait_watched(prefix: str, expected, timeout_s: float = 20) -> set[str]:
    """The watched set once it equals ``expected()`` (re-evaluated: the page may move)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got, want = watched(prefix), set(expected())
        if got == want or time.monotonic() > deadline:
            assert got == want, f"watched {sorted(got)}, on screen {sorted(want)}"
            return got
        time.sleep(0.3)


def test_the_watch_set_follows_what_is_on_screen(page, web, make_user):
    from fleet.services import provision_device

    prefix = f"watch-{uuid.uuid4().hex[:6]}-"
    ids = [f"{prefix}{n:02d}" for n in range(30)]
    for device_id in ids:
        provision_device(device_id, site="Watch farm")
    make_user("watch-admin", staff=True)

    sign_in(page, web, "watch-admin")
    page.wait_for_selector("#live-state.connected")
    top = wait_watched(prefix, lambda: page.evaluate(TILES_IN_VIEW))
    assert ids[0] in top and 0 < len(top) < len(ids)  # the tiles in view, not all 30

    late = f"{prefix}late"  # a camera the page shows after it loaded (a live update)
    provision_device(late, site="Watch farm")
    page.evaluate(ADD_TILE, late)
    with_late = wait_watched(prefix, lambda: page.evaluate(TILES_IN_VIEW))
    assert late in with_late and len(with_late) > 1
    page.evaluate("id => document.querySelector(`.tile[data-device='${id}']`).remove()", late)
    assert wait_watched(prefix, lambda: page.evaluate(TILES_IN_VIEW)) == top

    page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    bottom = wait_watched(prefix, lambda: page.evaluate(TILES_IN_VIEW))
    assert ids[-1] in bottom and ids[0] not in bottom

    page.evaluate(SET_VISIBILITY, "hidden")
    wait_watched(prefix, lambda: set())  # a hidden tab watches nothing
    page.evaluate(SET_VISIBILITY, "visible")
    assert wait_watched(prefix, lambda: page.evaluate(TILES_IN_VIEW)) == bottom

    page.goto(f"{web}/devices/{ids[5]}/")  # the overview's socket closed, this page's opened
    page.wait_for_selector("#live-state.connected")
    wait_watched(prefix, lambda: {ids[5]})
