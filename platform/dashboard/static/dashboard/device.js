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
})();
