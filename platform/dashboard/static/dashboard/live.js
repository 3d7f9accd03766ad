// Live dashboard: replaces a camera's frame when the platform announces a new decoded one.
// The server only sends events of cameras this user may see.
(function () {
  "use strict";
  const state = document.getElementById("live-state");
  let delay = 1000;

  function apply(event) {
    if (event.type !== "frame") return;
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
