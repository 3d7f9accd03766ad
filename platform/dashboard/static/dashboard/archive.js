// The archive timeline: sizes each density bar from its data attribute (a style attribute in
// the page would need 'unsafe-inline' in the Content-Security-Policy, strata.middleware), and
// on the first page of the hour still going on, puts each new frame of the camera at the top
// as the live socket announces it (live.js dispatches "strata:frame").
"use strict";
document.querySelectorAll(".timeline [data-height]").forEach((bar) => {
  bar.style.height = bar.dataset.height + "%";
});
document.querySelectorAll(".timeline [data-width]").forEach((span) => {
  span.style.width = span.dataset.width + "%";
});

(function () {
  const thumbs = document.querySelector("#thumbs[data-live-device]");
  if (!thumbs) return;
  const pageSize = Number(thumbs.dataset.pageSize);
  const clock = new Intl.DateTimeFormat("en-GB", {
    timeZone: thumbs.dataset.tz, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
  const count = document.getElementById("frame-count");

  function thumb(event) {
    const link = document.createElement("a");
    link.className = "thumb new";
    link.href = event.frame_url;
    link.dataset.frame = event.frame_id;
    const img = document.createElement("img");
    img.src = event.image_url;
    img.alt = "Frame #" + event.seq;
    img.width = event.width;
    img.height = event.height;
    const label = document.createElement("span");
    label.textContent = clock.format(new Date()) + " · k≤" + event.channels;
    link.append(img, label);
    return link;
  }

  document.addEventListener("strata:frame", function (e) {
    const event = e.detail;
    if (event.device_id !== thumbs.dataset.liveDevice) return;
    const known = thumbs.querySelector('[data-frame="' + event.frame_id + '"]');
    if (known) { // decoded again (another k) or at last: show it, keep its place
      const waiting = known.querySelector(".undecoded");
      if (waiting) waiting.replaceWith(thumb(event).querySelector("img"));
      return;
    }
    const empty = thumbs.querySelector(".empty");
    if (empty) empty.remove();
    thumbs.prepend(thumb(event));
    while (thumbs.querySelectorAll(".thumb").length > pageSize) thumbs.lastElementChild.remove();
    if (count) count.textContent = String(Number(count.textContent) + 1);
  });
})();
