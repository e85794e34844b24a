// The transcript viewer: the active cue follows playback, a click seeks, keys for play/cue/speed, token highlight.
(function () {
  "use strict";
  var media = document.getElementById("media");
  var list = document.getElementById("cues");
  if (!media || !list) return;
  var items = Array.prototype.slice.call(list.querySelectorAll("li"));
  var starts = items.map(function (li) { return parseFloat(li.dataset.start); });
  var speeds = [0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.5, 3];
  var active = -1, follow = true, tok = null;

  function indexAt(t) {  // the last cue starting at or before t (binary search)
    var lo = 0, hi = starts.length - 1, found = -1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (starts[mid] <= t + 0.001) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    return found;
  }
  function highlight() {
    var t = media.currentTime, i = indexAt(t);
    if (i >= 0 && t > parseFloat(items[i].dataset.end) + 0.05) i = -1;  // in a pause between cues
    if (i !== active) {
      if (active >= 0) items[active].classList.remove("active");
      active = i;
      if (i >= 0) {
        items[i].classList.add("active");
        if (follow) items[i].scrollIntoView({block: "nearest"});
      }
    }
    var on = null;
    if (i >= 0) {
      var toks = items[i].querySelectorAll(".tok");
      for (var k = 0; k < toks.length; k++) {
        if (parseFloat(toks[k].dataset.start) <= t && t < parseFloat(toks[k].dataset.end)) { on = toks[k]; break; }
      }
    }
    if (on !== tok) { if (tok) tok.classList.remove("on"); if (on) on.classList.add("on"); tok = on; }
  }
  function tick() { highlight(); if (!media.paused) window.requestAnimationFrame(tick); }
  function seek(i, play) {
    if (i < 0 || i >= items.length) return;
    media.currentTime = starts[i];
    follow = true;
    highlight();
    if (play) media.play().catch(function () {});
  }
  function speed(step) {
    var at = speeds.indexOf(media.playbackRate); if (at < 0) at = 2;
    media.playbackRate = speeds[Math.max(0, Math.min(speeds.length - 1, at + step))];
    document.getElementById("speed").textContent = media.playbackRate + "×";
  }
  list.addEventListener("click", function (e) {
    var li = e.target.closest("li"); if (li) seek(items.indexOf(li), true);
  });
  list.addEventListener("keydown", function (e) {
    if (e.key === "Enter") { var li = e.target.closest("li"); if (li) seek(items.indexOf(li), true); }
  });
  media.addEventListener("timeupdate", highlight);
  media.addEventListener("seeked", highlight);
  media.addEventListener("play", tick);
  media.addEventListener("ratechange", function () {
    document.getElementById("speed").textContent = media.playbackRate + "×";
  });
  window.addEventListener("wheel", function () { follow = false; }, {passive: true});
  window.addEventListener("touchmove", function () { follow = false; }, {passive: true});
  document.addEventListener("keydown", function (e) {
    var tag = (e.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === " " && tag !== "button" && tag !== "audio" && tag !== "video") {
      e.preventDefault(); if (media.paused) media.play().catch(function () {}); else media.pause();
    } else if (e.key === "j") { seek(active < 0 ? indexAt(media.currentTime) + 1 : active + 1, false); }
    else if (e.key === "k") { seek(Math.max(0, (active < 0 ? indexAt(media.currentTime) : active) - 1), false); }
    else if (e.key === "]") { speed(1); } else if (e.key === "[") { speed(-1); }
  });
  document.getElementById("copy").addEventListener("click", function () {
    var text = document.getElementById("plain").value, btn = this;
    function done() { btn.textContent = t("Copied"); setTimeout(function () { btn.textContent = t("Copy text"); }, 1500); }
    if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done); return; }
    var area = document.getElementById("plain");  // plain-HTTP LAN origins have no clipboard API
    area.hidden = false; area.select(); document.execCommand("copy"); area.hidden = true; done();
  });
  var t = parseFloat(new URLSearchParams(window.location.search).get("t"));
  function start() { if (!isNaN(t)) { media.currentTime = t; } highlight(); }
  if (media.readyState >= 1) start(); else media.addEventListener("loadedmetadata", start, {once: true});
  if (!isNaN(t)) { var i = indexAt(t); if (i >= 0) { items[i].classList.add("active"); active = i; items[i].scrollIntoView({block: "center"}); } }
})();
