// Upload and record into an inbox: one XMLHttpRequest per file (its upload events give the progress),
// one at a time; a cancelled or failed upload leaves nothing in the inbox (the server removes its temp file).
(function () {
  "use strict";
  const root = document.getElementById("uploader");
  if (!root) return;
  const limit = Number(root.dataset.limitMb) * 1024 * 1024;
  const media = new Set(root.dataset.extensions.split(" "));
  const inbox = document.getElementById("inbox");
  const rows = document.querySelector("#uploads tbody");
  const waiting = [];
  let busy = false;

  // The inbox and the per-run options as chosen when the file was added.
  function query() {
    const q = new URLSearchParams({ inbox: inbox.value });
    const lang = document.getElementById("opt-language").value;
    const itn = document.getElementById("opt-itn").value;
    const hot = document.getElementById("opt-hotwords").value.trim();
    const formats = [...document.querySelectorAll("input[name=opt-format]:checked")].map((c) => c.value);
    if (lang) q.set("language", lang);
    if (itn) q.set("itn", itn);
    if (hot) q.set("hotwords", hot);
    if (formats.length) q.set("formats", formats.join(","));
    return q.toString();
  }

  function ext(name) { const i = name.lastIndexOf("."); return i < 0 ? "" : name.slice(i + 1).toLowerCase(); }

  function add(file, fromFolder) {
    if (fromFolder && !media.has(ext(file.name))) return;  // a folder's covers and notes are not sent
    const tr = document.createElement("tr");
    tr.dataset.state = "waiting";
    tr.innerHTML = '<td class="name"></td><td><progress max="1" value="0"></progress></td>' +
      '<td class="result muted"></td><td><button type="button"></button></td>';
    tr.querySelector(".result").textContent = t("waiting");
    tr.querySelector("button").textContent = t("Cancel");
    tr.querySelector(".name").textContent = file.name;
    rows.appendChild(tr);
    const item = { file, tr, xhr: null, query: query() };
    tr.querySelector("button").onclick = () => cancel(item);
    if (file.size > limit) return finish(item, "error", t("larger than the limit of {n} MiB", {n: root.dataset.limitMb}));
    waiting.push(item);
    next();
  }

  function finish(item, state, text, job) {
    item.tr.dataset.state = state;
    const cell = item.tr.querySelector(".result");
    cell.className = "result " + (state === "done" ? "ok" : state === "error" ? "err" : "muted");
    cell.textContent = text;
    if (job) {
      item.tr.dataset.job = job;
      const a = document.createElement("a");
      a.href = "/files/" + job;
      a.textContent = t("job {id}", {id: job});
      cell.append(" · ", a);
    }
    item.tr.querySelector("button").remove();
  }

  function cancel(item) {
    const i = waiting.indexOf(item);
    if (i >= 0) waiting.splice(i, 1);
    if (item.xhr) item.xhr.abort(); else finish(item, "cancelled", t("cancelled"));
  }

  function next() {
    if (busy || !waiting.length) return;
    busy = true;
    const item = waiting.shift();
    const bar = item.tr.querySelector("progress");
    const xhr = new XMLHttpRequest();
    item.xhr = xhr;
    item.tr.dataset.state = "sending";
    item.tr.querySelector(".result").textContent = t("sending");
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = e.loaded / e.total; };
    xhr.onload = () => {
      let doc = {};
      try { doc = JSON.parse(xhr.responseText); } catch (e) { /* not JSON: the status says enough */ }
      if (xhr.status === 201 && doc.files && doc.files.length) {
        const f = doc.files[0];
        bar.value = 1;
        finish(item, "done", t(f.job_id ? "stored as {name}" : "stored as {name} (queued once it is seen)", {name: f.stored}), f.job_id);
      } else {
        finish(item, "error", doc.error || t("refused: HTTP {status}", {status: xhr.status}));
      }
    };
    xhr.onerror = () => finish(item, "error", t("the connection broke off; nothing was kept"));
    xhr.onabort = () => finish(item, "cancelled", t("cancelled; nothing was kept"));
    xhr.onloadend = () => { item.xhr = null; busy = false; next(); };
    const body = new FormData();
    body.append("file", item.file, item.file.name);
    xhr.open("POST", "/api/upload?" + item.query);
    xhr.send(body);
  }

  // Folders dropped: walk them (readEntries answers in batches until it returns none).
  function walk(entry) {
    if (entry.isFile) { entry.file((f) => add(f, true)); return; }
    if (!entry.isDirectory) return;
    const reader = entry.createReader();
    const more = () => reader.readEntries((list) => { if (list.length) { list.forEach(walk); more(); } });
    more();
  }

  const drop = document.getElementById("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const items = e.dataTransfer.items;
    if (items && items.length && items[0].webkitGetAsEntry) {
      for (const it of items) {
        const entry = it.webkitGetAsEntry();
        if (entry && entry.isDirectory) walk(entry); else if (it.getAsFile()) add(it.getAsFile(), false);
      }
    } else {
      for (const f of e.dataTransfer.files) add(f, false);
    }
  });
  document.getElementById("pick-files").addEventListener("change", (e) => {
    for (const f of e.target.files) add(f, false);
    e.target.value = "";
  });
  document.getElementById("pick-folder").addEventListener("change", (e) => {
    for (const f of e.target.files) add(f, true);
    e.target.value = "";
  });

  // Recording: MediaRecorder (WebM/Opus where offered), a level meter and a timer; uploaded like a file.
  const recordBtn = document.getElementById("record");
  const stopBtn = document.getElementById("stop");
  const discardBtn = document.getElementById("discard");
  const timer = document.getElementById("timer");
  const level = document.getElementById("level");
  if (!window.isSecureContext || !navigator.mediaDevices || !window.MediaRecorder) {
    document.getElementById("insecure").hidden = false;
    recordBtn.disabled = true;
    return;
  }
  let rec = null;
  let keep = false;

  function stamp() {
    const d = new Date();
    const p = (n) => String(n).padStart(2, "0");
    return d.getFullYear() + p(d.getMonth() + 1) + p(d.getDate()) + "-" + p(d.getHours()) + p(d.getMinutes()) +
      p(d.getSeconds());
  }

  recordBtn.onclick = async () => {
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      timer.textContent = t("no microphone: {why}", {why: err.message});
      return;
    }
    const type = MediaRecorder.isTypeSupported("audio/webm;codecs=opus") ? "audio/webm;codecs=opus" : "";
    const chunks = [];
    const recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
    const audio = new AudioContext();
    const analyser = audio.createAnalyser();
    analyser.fftSize = 1024;
    audio.createMediaStreamSource(stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const started = Date.now();
    rec = { recorder, stream, audio, frame: 0, tick: 0 };
    const draw = () => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      level.value = Math.min(1, Math.sqrt(sum / samples.length) * 4);
      rec.frame = requestAnimationFrame(draw);
    };
    draw();
    rec.tick = setInterval(() => {
      const s = Math.floor((Date.now() - started) / 1000);
      timer.textContent = Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
    }, 250);
    recorder.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
    recorder.onstop = () => {
      const kind = recorder.mimeType || "audio/webm";
      const suffix = kind.includes("ogg") ? "ogg" : kind.includes("mp4") ? "m4a" : "webm";
      if (keep) add(new File(chunks, "recording-" + stamp() + "." + suffix, { type: kind }), false);
    };
    recorder.start(1000);
    recordBtn.disabled = true;
    stopBtn.disabled = discardBtn.disabled = false;
    recordBtn.classList.add("on");
  };

  function end(upload) {
    if (!rec) return;
    keep = upload;
    cancelAnimationFrame(rec.frame);
    clearInterval(rec.tick);
    rec.recorder.stop();
    rec.stream.getTracks().forEach((t) => t.stop());
    rec.audio.close();
    rec = null;
    level.value = 0;
    recordBtn.disabled = false;
    recordBtn.classList.remove("on");
    stopBtn.disabled = discardBtn.disabled = true;
  }
  stopBtn.onclick = () => end(true);
  discardBtn.onclick = () => end(false);
})();
