// Live dashboard: replaces a camera's frame when the platform announces a new decoded one,
// and tells the platform which cameras are on screen. The server only sends events of
// cameras this user may see.
(function () {
  "use strict";
  const state = document.getElementById("live-state");
  let delay = 1000;
  const WINDOW_MS = 60000; // the rate shown: the last minute (dashboard.queries.recent_rates)
  const CAP_WINDOW_MS = 2000; // the cap holds over every 2 s of capture time (protocol CAP_WINDOW_S)
  const PACKET_OVERHEAD = 33; // header and CRC of a packet (mcucoder.bitstream), besides its chunks
  const arrivals = {}; // device id -> [[arrival ms, capture ms, packet bytes]] of the last minute

  // The last minute's mean kbit/s and its busiest 2 s window of capture time, as the server
  // renders them, so a figure beside the cap compares with what the cap holds.
  function rates(event) {
    const now = Date.now();
    const list = (arrivals[event.device_id] = (arrivals[event.device_id] || []).filter(function (a) { return a[0] > now - WINDOW_MS; }));
    list.push([now, event.capture_time_ms, (event.bytes || 0) + PACKET_OVERHEAD + event.channels]);
    const sent = list.slice().sort(function (a, b) { return a[1] - b[1]; });
    let peak = 0;
    sent.forEach(function (a) {
      const inside = sent.reduce(function (s, b) { return b[1] > a[1] - CAP_WINDOW_MS && b[1] <= a[1] ? s + b[2] : s; }, 0);
      peak = Math.max(peak, inside);
    });
    if (list.length < 2) return null; // the page's own figures stand until there are two
    const total = list.slice(1).reduce(function (s, a) { return s + a[2]; }, 0);
    const span = Math.max(1000, now - list[0][0]);
    return { kbps: (total * 8) / span, peak: (peak * 8) / CAP_WINDOW_MS }; // bytes/ms * 8 = kbit/s
  }

  function apply(event) {
    if (event.type !== "frame") return;
    document.dispatchEvent(new CustomEvent("strata:frame", { detail: event })); // page scripts
    const rate = rates(event);
    document.querySelectorAll('[data-device="' + CSS.escape(event.device_id) + '"]').forEach(function (el) {
      let img = el.querySelector("img.live-frame");
      const box = el.querySelector(".frame");
      if (!img && box) {
        const placeholder = box.querySelector(".placeholder");
        if (placeholder) placeholder.remove();
        img = document.createElement("img");
        img.className = "live-frame";
        img.alt = "Latest frame of " + event.device_id;
        box.prepend(img);
      }
      if (img) {
        img.src = event.image_url;
        img.dataset.frameId = event.frame_id;
        img.dataset.seq = event.seq;
      }
      const seq = el.querySelector('[data-field="seq"]');
      if (seq) seq.textContent = "#" + event.seq;
      const tier = el.querySelector('[data-field="tier"]');
      if (tier) tier.textContent = "k=" + event.channels + "/12";
      const status = el.querySelector('[data-field="health"]') || document.querySelector('h1 [data-field="health"]');
      if (status) { status.textContent = "online"; status.className = "status online"; }
      const bitrate = el.querySelector('[data-field="kbps"]');
      if (bitrate && rate) bitrate.textContent = rate.kbps.toFixed(1);
      const peak = el.querySelector('[data-field="peak-kbps"]');
      if (peak && rate) {
        peak.textContent = rate.peak.toFixed(1);
        const box = peak.closest(".rate");
        // data-cap is empty while the camera has not applied its cap: nothing to hold to yet
        box.classList.toggle("over", box.dataset.cap !== "" && rate.peak > Number(box.dataset.cap));
      }
      const seen = el.querySelector('[data-field="last-seen"]');
      if (seen) seen.textContent = "seen just now";
    });
  }

  // The cameras on screen: the server decodes a watched camera's frames first, so the page
  // names only those in view ({"watch": [ids]}), none while its tab is hidden, and says so
  // again when that changes (scrolling, filtering, switching tabs).
  let socket = null;
  let said = null; // the watch list last sent on this socket, as JSON
  const inView = new Set(); // elements with data-device / data-live-device in the viewport
  const watchedElements = '[data-device], [data-live-device]';

  function onScreen() {
    if (document.visibilityState !== "visible") return [];
    const ids = new Set();
    inView.forEach(function (el) {
      if (!el.isConnected) { inView.delete(el); return; }
      ids.add(el.dataset.device || el.dataset.liveDevice);
    });
    return Array.from(ids).sort();
  }

  let pending = null;
  function sayWatching() {
    clearTimeout(pending);
    pending = setTimeout(function () { // one message for a burst of changes (a scroll)
      const list = JSON.stringify(onScreen());
      if (!socket || socket.readyState !== WebSocket.OPEN || list === said) return;
      socket.send('{"watch":' + list + "}");
      said = list;
    }, 150);
  }

  const viewport = "IntersectionObserver" in window ? new IntersectionObserver(function (entries) {
    entries.forEach(function (entry) {
      if (entry.isIntersecting) inView.add(entry.target); else inView.delete(entry.target);
    });
    sayWatching();
  }) : null;
  // Cameras the page shows later (a live update of the overview, a page of tiles put in
  // place) are watched once in view like those of the first render; removed ones no longer.
  function eachCamera(node, act) {
    if (node.nodeType !== Node.ELEMENT_NODE) return;
    if (node.matches(watchedElements)) act(node);
    node.querySelectorAll(watchedElements).forEach(act);
  }
  function follow(el) {
    if (viewport) viewport.observe(el); else { inView.add(el); sayWatching(); }
  }
  function forget(el) {
    if (viewport) viewport.unobserve(el);
    if (inView.delete(el)) sayWatching();
  }
  eachCamera(document.body, follow);
  new MutationObserver(function (records) {
    records.forEach(function (record) {
      record.removedNodes.forEach(function (node) { eachCamera(node, forget); });
      record.addedNodes.forEach(function (node) { eachCamera(node, follow); });
    });
  }).observe(document.body, { childList: true, subtree: true });
  document.addEventListener("visibilitychange", sayWatching);

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = (socket = new WebSocket(scheme + location.host + "/ws/live/"));
    ws.onopen = function () {
      delay = 1000;
      said = null; // a new socket watches nothing yet
      if (state) state.classList.add("connected");
      sayWatching();
    };
    ws.onmessage = function (msg) {
      const event = JSON.parse(msg.data);
      if (event.type === "error") console.warn("live view: " + event.error);
      else apply(event); // "watching" (the server's answer) changes nothing on the page
    };
    ws.onclose = function () {
      if (state) state.classList.remove("connected");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
})();
