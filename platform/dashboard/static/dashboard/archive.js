// The archive timeline: sizes each density bar from its data attribute. A style attribute in
// the page would need 'unsafe-inline' in the Content-Security-Policy (strata.middleware).
"use strict";
document.querySelectorAll(".timeline [data-height]").forEach((bar) => {
  bar.style.height = bar.dataset.height + "%";
});
document.querySelectorAll(".timeline [data-width]").forEach((span) => {
  span.style.width = span.dataset.width + "%";
});
