// Countdowns tick here, in the page: the server sends each one's seconds left once (data-left, with the
// page or an SSE update) and never wakes up to count. Seconds left, not a wall-clock deadline, so a browser
// whose clock is off still counts right. An element replaced by an update starts again from its new value.
"use strict";

// The page's strings for scripts: the server puts the reader's catalogue (web/i18n.py, JS_STRINGS) into
// <script id="i18n">; t("Copied") is that text in the page's language, English where there is none.
window.t = (() => {
  const el = document.getElementById("i18n");
  const table = el ? JSON.parse(el.textContent) : {};
  return (text, values) => (table[text] || text).replace(/\{(\w+)\}/g, (m, k) => (values && k in values ? values[k] : m));
})();

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
