// Countdowns tick here, in the page: the server sends each one's seconds left once (data-left, with the
// page or an SSE update) and never wakes up to count. Seconds left, not a wall-clock deadline, so a browser
// whose clock is off still counts right. An element replaced by an update starts again from its new value.
"use strict";
(() => {
  const ends = new WeakMap();
  function tick() {
    const now = performance.now() / 1000;
    for (const el of document.querySelectorAll(".countdown[data-left]")) {
      if (!ends.has(el)) ends.set(el, now + parseFloat(el.dataset.left));
      const left = Math.max(0, Math.ceil(ends.get(el) - now));
      if (el.textContent !== String(left)) el.textContent = String(left);
    }
  }
  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:afterSwap", tick);
  setInterval(tick, 1000);
})();
