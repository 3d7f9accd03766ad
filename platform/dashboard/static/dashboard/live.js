// Live dashboard: replaces a camera's frame when the platform announces a new decoded one.
// The server only sends events of cameras this user may see.
(function () {
  "use strict";
  const state = document.getElementById("live-state");
  let delay = 1000;
  const WINDOW_MS = 60000;
  const arrivals = {}; // device id -> [[time, bytes]] of the last minute

  function kbps(deviceId, bytes) {
    const now = Date.now();
    const list = (arrivals[deviceId] = (arrivals[deviceId] || []).filter(function (a) { return a[0] > now - WINDOW_MS; }));
    list.push([now, bytes]);
    if (list.length < 2) return null;
    const span = Math.max(1000, now - list[0][0]);
    const sum = list.slice(1).reduce(function (s, a) { return s + a[1]; }, 0);
    return (sum * 8) / span; // bytes per ms * 8 = kbit/s
  }

  function apply(event) {
    if (event.type !== "frame") return;
    const rate = kbps(event.device_id, event.bytes || 0);
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
      if (bitrate && rate !== null) bitrate.textContent = rate.toFixed(1) + " kbit/s";
      const seen = el.querySelector('[data-field="last-seen"]');
      if (seen) seen.textContent = "seen just now";
    });
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(scheme + location.host + "/ws/live/");
    ws.onopen = function () { delay = 1000; if (state) state.classList.add("connected"); };
    ws.onmessage = function (msg) { apply(JSON.parse(msg.data)); };
    ws.onclose = function () {
      if (state) state.classList.remove("connected");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
})();
