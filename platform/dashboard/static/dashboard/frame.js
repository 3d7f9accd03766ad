// Quality sliders: each pane shows the frame decoded from its first k layers, asking the
// platform to decode it (on the archive queue) when no image at that k exists yet. A second
// pane compares two k side by side.
(function () {
  "use strict";
  const viewer = document.getElementById("viewer");
  if (!viewer) return;
  const download = document.getElementById("download");

  function wire(pane, main) {
    const slider = pane.querySelector(".pane-slider");
    const output = pane.querySelector(".pane-value");
    const img = pane.querySelector(".pane-image");
    const badge = pane.querySelector(".pane-state");
    let wanted = Number(slider.value);
    let timer = null;

    function show(k, url) {
      img.src = url;
      img.dataset.k = k;
      img.alt = img.alt.replace(/k=\d+/, "k=" + k);
      badge.textContent = main ? "" : "k=" + k;
      if (main) download.href = viewer.dataset.imageUrl + "?k=" + k + "&format=png";
    }

    function request(k, attempt) {
      if (k !== wanted) return; // the slider moved on
      fetch(viewer.dataset.decodeUrl + "?k=" + k, { credentials: "same-origin" })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (data) {
          if (k !== wanted) return;
          if (data.ready) { show(k, data.image_url); return; }
          badge.textContent = "decoding k=" + k + "…";
          if (attempt < 240) setTimeout(function () { request(k, attempt + 1); }, 500);
          else badge.textContent = "not decoded: is a decode worker running?";
        })
        .catch(function () { badge.textContent = "could not reach the platform"; });
    }

    slider.addEventListener("input", function () {
      wanted = Number(slider.value);
      output.textContent = "k = " + wanted + " of " + slider.max;
      const url = new URL(location.href);
      url.searchParams.set(slider.name, wanted);
      history.replaceState(null, "", url);
      clearTimeout(timer);
      timer = setTimeout(function () { request(wanted, 0); }, 120);
    });
    return function load() { if (img.dataset.k !== String(wanted)) request(wanted, 0); };
  }

  // Scrub through the camera's frames with the arrow keys, keeping the chosen k.
  document.addEventListener("keydown", function (e) {
    if (e.target instanceof HTMLInputElement || e.altKey || e.ctrlKey || e.metaKey) return;
    const rel = { ArrowLeft: "prev", ArrowRight: "next" }[e.key];
    const link = rel && document.querySelector('a[rel="' + rel + '"]');
    if (!link) return;
    const url = new URL(link.href);
    url.search = location.search;
    location.href = url;
  });

  const panes = viewer.querySelectorAll(".pane");
  const loadMain = wire(panes[0], true);
  const loadCompare = wire(panes[1], false);
  loadMain();
  const toggle = document.getElementById("compare");
  toggle.addEventListener("click", function () {
    const on = panes[1].hidden;
    panes[1].hidden = !on;
    viewer.classList.toggle("comparing", on);
    toggle.setAttribute("aria-pressed", String(on));
    toggle.textContent = on ? "Hide the comparison" : "Compare two k side by side";
    if (on) loadCompare();
  });
})();
