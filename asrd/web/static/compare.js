// Re-run and compare: queue a re-run, follow it until done, choose a run (confirming over edited sidecars).
(function () {
  "use strict";
  const root = document.getElementById("compare");
  if (!root) return;
  const job = root.dataset.job;
  const flash = document.getElementById("flash");

  function say(text, ok) {
    flash.innerHTML = "";
    const p = document.createElement("p");
    p.className = ok ? "flash ok" : "flash err";
    p.setAttribute("role", "status");
    p.textContent = text;
    flash.appendChild(p);
  }

  async function post(url, body) {
    const answer = await fetch(url, {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
      credentials: "same-origin",
    });
    let doc = {};
    try { doc = await answer.json(); } catch (e) { doc = {error: answer.statusText}; }
    return {ok: answer.ok && doc.ok !== false, doc: doc};
  }

  // While a run is queued or running, the server pushes this job's waiting runs (SSE, no polling); when they
  // differ from what the page shows (one started, finished or failed), the page is drawn again.
  function follow() {
    function key(runs) {  // [[run id, state], ...] in run id order, whatever order the table has
      return JSON.stringify(runs.slice().sort(function (a, b) { return a[0] - b[0]; }));
    }
    const shown = Array.from(document.querySelectorAll("tr[data-state=queued], tr[data-state=running]"))
      .map(function (tr) { return [parseInt(tr.id.slice(4), 10), tr.dataset.state]; });
    if (!shown.length) return;
    const source = new EventSource("/compare/" + job + "/events", {withCredentials: true});
    source.addEventListener("runs", function (event) {
      if (key(JSON.parse(event.data)) === key(shown)) return;
      source.close();
      location.reload();
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  document.getElementById("rerun").addEventListener("submit", async function (event) {
    event.preventDefault();
    const form = event.target;
    const body = {};
    for (const [key, value] of new FormData(form).entries()) {
      if (value === "") continue;
      body[key] = key === "itn" ? value === "true" : value;
    }
    const result = await post("/api/jobs/" + job + "/rerun", body);
    if (!result.ok) return say(result.doc.error || t("refused"), false);
    say(result.doc.message ? "re-run " + result.doc.message + " queued" : "queued", true);
    location.reload();
  });

  root.addEventListener("click", async function (event) {
    const button = event.target.closest("button.choose");
    if (!button) return;
    const body = {};
    if (root.dataset.edited) {
      const sure = window.confirm(t("These sidecars were edited since asrd wrote them: {files}.\nReplace them with run {run} and discard your edits?",
        {files: root.dataset.edited, run: button.dataset.run}));
      if (!sure) return;
      body.discard = true;
    }
    const result = await post("/api/jobs/" + job + "/runs/" + button.dataset.run + "/choose", body);
    if (!result.ok) return say(result.doc.error || "refused", false);
    say(result.doc.message, true);
    location.reload();
  });

  follow();
})();
