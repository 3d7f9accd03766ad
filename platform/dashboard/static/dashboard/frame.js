// The quality slider: shows the frame decoded from its first k layers, asking the platform
// to decode it (on the archive queue) when no image at that k exists yet.
(function () {
  "use strict";
  const viewer = document.getElementById("viewer");
  if (!viewer) return;
  const slider = document.getElementById("quality");
  const output = document.getElementById("k-value");
  const img = document.getElementById("frame-image");
  const badge = document.getElementById("decode-state");
  const download = document.getElementById("download");
  const max = slider.max;
  let wanted = Number(slider.value);
  let timer = null;

  function show(k, url) {
    img.src = url;
    img.dataset.k = k;
    img.alt = img.alt.replace(/k=\d+/, "k=" + k);
    badge.textContent = "";
    download.href = viewer.dataset.imageUrl + "?k=" + k + "&format=png";
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

  function changed() {
    wanted = Number(slider.value);
    output.textContent = "k = " + wanted + " of " + max;
    const url = new URL(location.href);
    url.searchParams.set("k", wanted);
    history.replaceState(null, "", url);
    clearTimeout(timer);
    timer = setTimeout(function () { request(wanted, 0); }, 120);
  }

  slider.addEventListener("input", changed);
  if (!img.dataset.k) request(wanted, 0); // the page's k was not decoded yet
})();
