// Camera page: polls health and desired vs reported state, so an admin sees the camera apply a change.
(function () {
  "use strict";
  const root = document.querySelector("[data-state-url]");
  if (!root) return;
  const applied = document.getElementById("applied");

  function text(value, none) { return value === null || value === undefined ? none : String(value); }

  function render(s) {
    const health = document.querySelector('h1 [data-field="health"]');
    if (health) { health.textContent = s.health; health.className = "status " + s.health; }
    ["version", "tier", "max_kbps", "fps", "mode"].forEach(function (key) {
      const d = root.querySelector('[data-desired="' + key + '"]');
      const r = root.querySelector('[data-reported="' + key + '"]');
      if (d) d.textContent = text(s.desired[key], "none");
      if (r) r.textContent = s.reported ? text(s.reported[key], key === "max_kbps" ? "none" : "—") : "—";
    });
    applied.innerHTML = "";
    const span = document.createElement("span");
    const version = s.desired.version; // the one the table shows: the line never names another
    if (s.rejected) { span.className = "error"; span.textContent = "The camera refused version " + version + ": " + s.rejected; }
    else if (s.pending) { span.className = "pending"; span.textContent = "Waiting for the camera to apply version " + version + "…"; }
    else if (s.reported) { span.className = "ok"; span.textContent = "Version " + version + " applied by the camera."; }
    applied.appendChild(span);
  }

  function poll() {
    fetch(root.dataset.stateUrl, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) { if (s) render(s); })
      .catch(function () {})
      .finally(function () { setTimeout(poll, document.hidden ? 15000 : 2000); });
  }
  setTimeout(poll, 2000);

  // Recent frames: each new frame of this camera joins the top as the live socket announces
  // it (live.js dispatches "strata:frame"); the oldest row leaves.
  const recent = document.getElementById("recent-frames");
  const clock = new Intl.DateTimeFormat("en-GB", {
    timeZone: recent.dataset.tz, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
  document.addEventListener("strata:frame", function (e) {
    const event = e.detail;
    if (event.device_id !== root.dataset.device) return;
    if (recent.querySelector('[data-frame="' + event.frame_id + '"]')) return; // decoded again
    const empty = recent.querySelector(".empty");
    if (empty) empty.remove();
    const row = document.createElement("tr");
    row.dataset.frame = event.frame_id;
    row.className = "new";
    const link = document.createElement("a");
    link.href = event.frame_url;
    link.textContent = "#" + event.seq;
    const cells = [link, clock.format(new Date()), event.width + "×" + event.height, String(event.channels)];
    cells.forEach(function (content) {
      const cell = document.createElement("td");
      cell.append(content);
      row.append(cell);
    });
    recent.prepend(row);
    while (recent.rows.length > Number(recent.dataset.max)) recent.deleteRow(-1);
  });
})();
