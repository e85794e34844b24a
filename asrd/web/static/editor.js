// Correcting a transcript (asrd.web.editor): edit cue text and times, split, merge, delete, shift, undo/redo;
// asrd's own rule checker (POST /api/cuecheck) as you type; keyboard playback control; save (PUT) and discard.
(function () {
  "use strict";
  var box = document.getElementById("edits");
  if (!box) return;
  var job = box.dataset.job;
  var media = document.getElementById("media");
  var editor = document.getElementById("editor"), list = document.getElementById("edit-cues");
  var statusEl = document.getElementById("ed-status");
  var cues = [], undo = [], redo = [], current = 0, typing = null, checkTimer = null, checkSeq = 0, dirty = false;
  var speeds = [0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.5, 3];

  function say(text, bad) { statusEl.textContent = text; statusEl.className = bad ? "err" : "muted"; }
  function post(url, method, body) {
    return fetch(url, {method: method, headers: {"Content-Type": "application/json"}, credentials: "same-origin",
                       body: body === undefined ? undefined : JSON.stringify(body)})
      .then(function (r) { return r.json().catch(function () { return {ok: false, error: "HTTP " + r.status}; }); });
  }

  // ---- times: whole milliseconds in, "m:ss.mmm" shown
  function fmt(ms) {
    var m = Math.floor(ms / 60000), s = Math.floor(ms % 60000 / 1000), f = ms % 1000;
    return m + ":" + (s < 10 ? "0" : "") + s + "." + ("00" + f).slice(-3);
  }
  function parse(text) {  // "ss.mmm", "m:ss.mmm" or "h:mm:ss.mmm" -> ms, NaN when not a time
    var parts = text.trim().split(":"), total = 0;
    if (parts.length > 3 || parts.some(function (p) { return !/^\d+(\.\d{0,3})?$/.test(p); })) return NaN;
    parts.forEach(function (p, i) { total = total * 60 + (i < parts.length - 1 ? parseInt(p, 10) : parseFloat(p)); });
    return Math.round(total * 1000);
  }
  function cjk(ch) { return /[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]/.test(ch || ""); }
  function join(a, b) {
    a = a.replace(/\s+$/, ""); b = b.replace(/^\s+/, "");
    return a && b && !(cjk(a.slice(-1)) && cjk(b[0])) ? a + " " + b : a + b;
  }

  // ---- history
  function snapshot() { return JSON.stringify(cues); }
  function remember() {
    undo.push(snapshot()); if (undo.length > 500) undo.shift();
    redo = []; dirty = true; buttons();
  }
  function buttons() {
    document.getElementById("ed-undo").disabled = !undo.length;
    document.getElementById("ed-redo").disabled = !redo.length;
  }
  function back(from, to) {
    if (!from.length) return;
    to.push(snapshot()); cues = JSON.parse(from.pop()); typing = null; dirty = true;
    current = Math.min(current, cues.length - 1); draw(); buttons(); check();
  }

  // ---- rows
  function row(c, i) {
    var li = document.createElement("li");
    li.dataset.index = i;
    li.innerHTML = '<span class="n">' + (i + 1) + '</span>' +
      '<input class="t-start" aria-label="' + t("start") + '" size="9">' + '<span class="muted">→</span>' +
      '<input class="t-end" aria-label="' + t("end") + '" size="9">' +
      '<button type="button" class="play" title="' + t("play from here") + '">▶</button>' +
      '<button type="button" class="split" title="' + t("split at the cursor (Ctrl+Enter)") + '">' + t("split") + '</button>' +
      '<button type="button" class="merge" title="' + t("merge with the next cue (Ctrl+M)") + '">' + t("merge") + ' ↓</button>' +
      '<button type="button" class="del" title="' + t("delete this cue") + '">✕</button>' +
      '<textarea class="t-text" rows="2" aria-label="' + t("text") + '"></textarea><span class="warn"></span>';
    li.querySelector(".t-start").value = fmt(c.start_ms);
    li.querySelector(".t-end").value = fmt(c.end_ms);
    li.querySelector(".t-text").value = c.text;
    return li;
  }
  function draw() {
    var focus = document.activeElement, cls = focus && focus.className, at = focus && focus.closest && focus.closest("li");
    var keep = at && list.contains(at) ? parseInt(at.dataset.index, 10) : -1;
    list.textContent = "";
    cues.forEach(function (c, i) { list.appendChild(row(c, i)); });
    if (keep >= 0 && list.children[Math.min(keep, cues.length - 1)]) {
      var el = list.children[Math.min(keep, cues.length - 1)].querySelector("." + (cls || "t-text").split(" ")[0]);
      if (el) el.focus();
    }
    mark();
  }
  function item(el) { var li = el.closest("li"); return li ? parseInt(li.dataset.index, 10) : -1; }
  function rowAt(i) { return list.children[i]; }

  list.addEventListener("focusin", function (e) { var i = item(e.target); if (i >= 0) { current = i; mark(); } });
  list.addEventListener("input", function (e) {
    var i = item(e.target); if (i < 0) return;
    var key = i + e.target.className;
    if (typing !== key) { remember(); typing = key; }  // one undo step per field typed in
    if (e.target.classList.contains("t-text")) cues[i].text = e.target.value;
    else {
      var ms = parse(e.target.value), field = e.target.classList.contains("t-start") ? "start_ms" : "end_ms";
      e.target.classList.toggle("bad", isNaN(ms));
      if (!isNaN(ms)) cues[i][field] = ms;
    }
    dirty = true; check();
  });
  list.addEventListener("change", function (e) {  // a time field left: shown in the one format again
    var i = item(e.target);
    if (i >= 0 && !e.target.classList.contains("t-text") && !e.target.classList.contains("bad")) {
      e.target.value = fmt(cues[i][e.target.classList.contains("t-start") ? "start_ms" : "end_ms"]);
    }
  });
  list.addEventListener("click", function (e) {
    var i = item(e.target); if (i < 0 || e.target.tagName !== "BUTTON") return;
    current = i;
    if (e.target.classList.contains("play")) playFrom(cues[i].start_ms);
    else if (e.target.classList.contains("split")) split(i, rowAt(i).querySelector(".t-text").selectionStart);
    else if (e.target.classList.contains("merge")) merge(i);
    else if (e.target.classList.contains("del")) remove(i);
  });

  // ---- edits
  function split(i, at) {
    var c = cues[i], text = c.text, a = text.slice(0, at).trim(), b = text.slice(at).trim();
    if (!a || !b) { say(t("put the cursor inside the text where the cue should be split"), true); return; }
    // not "var t": that would hide the i18n helper t() in this whole function (hoisting), say(t(...)) included
    var playhead = media ? Math.round(media.currentTime * 1000) : NaN, cut;
    if (playhead > c.start_ms && playhead < c.end_ms) cut = playhead;  // at the playhead when it is inside the cue
    else cut = c.start_ms + Math.round((c.end_ms - c.start_ms) * at / Math.max(1, text.length));
    cut = Math.max(c.start_ms + 1, Math.min(c.end_ms - 1, cut));
    // leave the configured minimum gap ([subtitles] min_gap_ms) between the halves when both keep some time
    var gap = parseInt(box.dataset.gap, 10) || 0, aEnd = cut, bStart = cut;
    if (gap > 0 && cut - Math.floor(gap / 2) > c.start_ms && cut - Math.floor(gap / 2) + gap < c.end_ms) {
      aEnd = cut - Math.floor(gap / 2); bStart = aEnd + gap;
    }
    remember(); typing = null;
    cues.splice(i, 1, {start_ms: c.start_ms, end_ms: aEnd, text: a}, {start_ms: bStart, end_ms: c.end_ms, text: b});
    current = i + 1; draw(); check(); focusText(i + 1, 0);
  }
  function merge(i) {
    if (i + 1 >= cues.length) { say(t("the last cue has nothing after it to merge with"), true); return; }
    remember(); typing = null;
    var a = cues[i], b = cues[i + 1];
    cues.splice(i, 2, {start_ms: a.start_ms, end_ms: Math.max(a.end_ms, b.end_ms), text: join(a.text, b.text)});
    current = i; draw(); check(); focusText(i, a.text.length);
  }
  function remove(i) {
    if (cues.length === 1) { say(t("a transcript needs one cue at least; discard your edits instead"), true); return; }
    remember(); typing = null; cues.splice(i, 1); current = Math.min(i, cues.length - 1); draw(); check();
  }
  function shift(all) {
    var by = parseInt(document.getElementById("ed-shift").value, 10);
    if (isNaN(by) || !by) { say(t("enter the milliseconds to shift by (negative: earlier)"), true); return; }
    var last = all ? cues.length : current + 1;
    for (var k = current; k < last; k++) {
      if (cues[k].start_ms + by < 0) { say(t("that would move cue {n} before 0:00", {n: k + 1}), true); return; }
    }
    remember(); typing = null;
    for (var j = current; j < last; j++) { cues[j].start_ms += by; cues[j].end_ms += by; }
    draw(); check(); say(t("shifted {n} cue(s) by {ms} ms", {n: last - current, ms: by}));
  }
  function focusText(i, pos) {
    var el = rowAt(i) && rowAt(i).querySelector(".t-text");
    if (el) { el.focus(); el.setSelectionRange(pos, pos); }
  }
  function atPlayhead(field) {
    if (!media) return;
    remember(); typing = null;
    cues[current][field] = Math.round(media.currentTime * 1000);
    draw(); check();
  }

  // ---- asrd's rule checker, as you type
  function check() {
    clearTimeout(checkTimer);
    checkTimer = setTimeout(function () {
      var seq = ++checkSeq;
      post("/api/cuecheck", "POST", {cues: cues}).then(function (doc) {
        if (seq !== checkSeq) return;  // an older answer arriving late
        warnings = doc.warnings || {}; problem = doc.ok ? null : {cue: doc.cue, error: doc.error};
        mark();
        if (problem) say(problem.error, true);
        else say(doc.count ? t("{n} rule warning(s)", {n: doc.count}) : t("no rule warnings"));
      });
    }, 250);
  }
  var warnings = {}, problem = null;
  function mark() {
    Array.prototype.forEach.call(list.children, function (li, i) {
      var w = warnings[i] || [], span = li.querySelector(".warn");
      // the label (English from the server, translated here), the detail in the tooltip
      span.textContent = w.length ? "⚠ " + w.map(function (x) { return t(x.label || x.rule); }).join(", ") : "";
      span.title = w.map(function (x) { return t(x.label || x.rule) + ": " + x.detail; }).join("\n");
      li.classList.toggle("invalid", !!problem && problem.cue === i);
      li.classList.toggle("current", i === current);
    });
  }

  // ---- playback while editing
  function playFrom(ms) { if (!media) return; media.currentTime = ms / 1000; media.play().catch(function () {}); }
  function speedStep(step) {
    var at = speeds.indexOf(media.playbackRate); if (at < 0) at = 2;
    media.playbackRate = speeds[Math.max(0, Math.min(speeds.length - 1, at + step))];
  }
  if (media) {
    media.addEventListener("timeupdate", function () {
      if (editor.hidden) return;
      var t = media.currentTime * 1000;
      Array.prototype.forEach.call(list.children, function (li, i) {
        li.classList.toggle("active", cues[i] && t >= cues[i].start_ms && t < cues[i].end_ms);
      });
    });
  }
  document.addEventListener("keydown", function (e) {
    if (editor.hidden) return;
    var k = e.key, ctrl = e.ctrlKey || e.metaKey;
    var handled = true;
    if (ctrl && e.code === "Space") { if (media.paused) media.play().catch(function () {}); else media.pause(); }
    else if (ctrl && k === ",") { media.currentTime = Math.max(0, media.currentTime - 2); }
    else if (ctrl && k === ".") { media.currentTime = media.currentTime + 2; }
    else if (ctrl && k === "[") { speedStep(-1); }
    else if (ctrl && k === "]") { speedStep(1); }
    else if (e.altKey && k === "1") { atPlayhead("start_ms"); }
    else if (e.altKey && k === "2") { atPlayhead("end_ms"); }
    else if (ctrl && k === "Enter") {
      var ta = e.target.classList && e.target.classList.contains("t-text") ? e.target : null;
      split(current, ta ? ta.selectionStart : Math.floor(cues[current].text.length / 2));
    }
    else if (ctrl && (k === "m" || k === "M")) { merge(current); }
    else if (ctrl && !e.shiftKey && (k === "z" || k === "Z")) { back(undo, redo); }
    else if (ctrl && (k === "y" || k === "Y" || (e.shiftKey && (k === "z" || k === "Z")))) { back(redo, undo); }
    else if (ctrl && (k === "s" || k === "S")) { save(); }
    else handled = false;
    if (handled) { e.preventDefault(); e.stopPropagation(); }
  }, true);

  // ---- open, save, cancel, discard
  function open() {
    fetch("/api/jobs/" + job + "/edits", {credentials: "same-origin"}).then(function (r) { return r.json(); })
      .then(function (doc) {
        cues = doc.cues || []; undo = []; redo = []; current = 0; dirty = false; buttons();
        editor.hidden = false; document.getElementById("edit-start").hidden = true;
        var view = document.getElementById("cues"); if (view) view.hidden = true;
        draw(); check(); focusText(0, 0);
      });
  }
  function save() {
    say(t("saving…"));
    post("/api/jobs/" + job + "/transcript", "PUT", {cues: cues}).then(function (doc) {
      if (!doc.ok) {
        if (doc.cue !== undefined && doc.cue !== null) { problem = {cue: doc.cue}; mark(); }
        say(t("not saved: {why}", {why: doc.error}), true); return;
      }
      dirty = false; say(doc.message);
      window.location.reload();
    });
  }
  function cancel() {
    if (dirty && !window.confirm(t("Leave the editor without saving your changes?"))) return;
    editor.hidden = true; document.getElementById("edit-start").hidden = false; dirty = false;
    var view = document.getElementById("cues"); if (view) view.hidden = false;
  }
  var start = document.getElementById("edit-start");
  if (start) start.addEventListener("click", open);
  document.getElementById("ed-save").addEventListener("click", save);
  document.getElementById("ed-cancel").addEventListener("click", cancel);
  document.getElementById("ed-undo").addEventListener("click", function () { back(undo, redo); });
  document.getElementById("ed-redo").addEventListener("click", function () { back(redo, undo); });
  document.getElementById("ed-shift-one").addEventListener("click", function () { shift(false); });
  document.getElementById("ed-shift-after").addEventListener("click", function () { shift(true); });
  var discard = document.getElementById("discard");
  if (discard) discard.addEventListener("click", function () {
    if (!window.confirm(t("Discard your corrections? The sidecars are rewritten from the machine result."))) return;
    post("/api/jobs/" + job + "/edits/discard", "POST").then(function (doc) {
      if (doc.ok) window.location.reload(); else window.alert(doc.error);
    });
  });
  window.addEventListener("beforeunload", function (e) { if (dirty && !editor.hidden) { e.preventDefault(); } });
})();
