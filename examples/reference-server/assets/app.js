// Gantry's web UI: the runs list and a run's page (DAG picture, jobs, live log), on the
// server's JSON API and its live-log event stream. No framework, no network beyond the server.
"use strict";

const app = document.getElementById("app");
const dot = document.getElementById("live-dot");
const tokenInput = document.getElementById("token");
tokenInput.value = localStorage.getItem("gantry-token") || "";
tokenInput.addEventListener("change", () => localStorage.setItem("gantry-token", tokenInput.value.trim()));
document.getElementById("token-form").addEventListener("submit", (e) => { e.preventDefault(); localStorage.setItem("gantry-token", tokenInput.value.trim()); });

const FINISHED = ["success", "failure", "cancelled", "skipped"];
let timer = null;
let stream = null;

function token() { return localStorage.getItem("gantry-token") || ""; }

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token()) headers["Authorization"] = "Bearer " + token();
  if (options.body) headers["Content-Type"] = "application/json";
  const r = await fetch("/api" + path, Object.assign({}, options, { headers }));
  const type = r.headers.get("content-type") || "";
  const body = type.includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new Error((body && body.error) || ("HTTP " + r.status));
  return body;
}

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function badge(status) { return `<span class="badge ${esc(status)}">${esc(status)}</span>`; }

function ago(ms) {
  if (!ms) return "";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + "s ago";
  if (s < 3600) return Math.round(s / 60) + "m ago";
  if (s < 86400) return Math.round(s / 3600) + "h ago";
  return new Date(ms).toLocaleString();
}

function took(a, b) {
  if (!a) return "";
  const s = Math.round(((b || Date.now()) - a) / 1000);
  return s < 60 ? s + "s" : Math.floor(s / 60) + "m " + (s % 60) + "s";
}

function live(on) { dot.classList.toggle("on", on); }

function poll(fn, ms) {
  clearTimeout(timer);
  const tick = async () => {
    let again = true;
    try { again = await fn(); live(true); } catch (e) { live(false); }
    if (again !== false) timer = setTimeout(tick, ms);
  };
  tick();
}

// ---- the runs list -------------------------------------------------------------------------

function runsPage() {
  document.title = "Runs · Gantry";
  app.innerHTML = `<h1>Runs</h1><table class="runs" id="runs"><thead><tr><th>#</th><th>Status</th><th>Repository</th><th class="wide">Workflow</th><th class="wide">Ref</th><th class="wide">Commit</th><th>Created</th><th class="wide">Duration</th></tr></thead><tbody></tbody></table>`;
  const body = app.querySelector("tbody");
  body.addEventListener("click", (e) => {
    const row = e.target.closest("tr[data-id]");
    if (row) go("/runs/" + row.dataset.id);
  });
  poll(async () => {
    const page = await api("/runs?limit=100");
    body.innerHTML = page.runs.length ? page.runs.map((r) => `<tr data-id="${esc(r.id)}" data-status="${esc(r.status)}">
      <td>${r.number}</td><td>${badge(r.status)}</td><td>${esc(r.repo)}</td><td class="wide">${esc(r.workflow)}</td>
      <td class="wide">${esc(r.ref.replace(/^refs\/(heads|tags)\//, ""))}</td><td class="wide"><code>${esc(r.sha.slice(0, 8))}</code></td>
      <td>${ago(r.created_at)}</td><td class="wide">${took(r.started_at, r.finished_at)}</td></tr>`).join("")
      : `<tr><td colspan="8" class="muted">No runs yet: point a forge's webhook at <code>/hooks/github</code> (or gitlab, gitea, forgejo).</td></tr>`;
  }, 2000);
}

// ---- a run ---------------------------------------------------------------------------------

function runPage(id) {
  let selected = location.hash.startsWith("#job=") ? decodeURIComponent(location.hash.slice(5)) : null;
  let streamKey = null;
  app.innerHTML = `<div id="head"></div><div class="actions" id="actions"></div><div id="notes"></div>
    <h2>Jobs</h2><div class="graph" id="graph"></div>
    <div class="layout"><ul class="jobs" id="jobs"></ul>
    <section><div class="log-panel"><div class="log-tools"><strong id="log-title">Select a job</strong>
      <input id="search" type="search" placeholder="search the log"><span id="hits" class="muted"></span></div>
      <div class="log" id="log"></div></div><div id="tests"></div></section></div>`;
  const actions = app.querySelector("#actions");
  actions.innerHTML = `<button id="rerun-all">Rerun all</button><button id="rerun-failed">Rerun failed</button><button id="cancel" class="danger">Cancel</button><span id="said" class="muted"></span>`;
  const said = app.querySelector("#said");
  const act = async (path, body) => {
    said.textContent = "…";
    try {
      const r = await api(path, { method: "POST", body: body ? JSON.stringify(body) : undefined });
      said.textContent = r.queued ? "queued " + r.queued : (r.cancelled ? "cancelled" : "done");
      refresh();
    } catch (e) { said.textContent = e.message; }
  };
  app.querySelector("#rerun-all").onclick = () => act(`/runs/${id}/rerun`, {});
  app.querySelector("#rerun-failed").onclick = () => act(`/runs/${id}/rerun`, { failed: true });
  app.querySelector("#cancel").onclick = () => act(`/runs/${id}/cancel`);
  const jobsList = app.querySelector("#jobs");
  jobsList.addEventListener("click", (e) => {
    const button = e.target.closest("button[data-play]");
    if (button) { e.stopPropagation(); act(`/runs/${id}/approve`, { job: button.dataset.play }); return; }
    const li = e.target.closest("li[data-job]");
    if (li) select(li.dataset.job);
  });
  const graph = app.querySelector("#graph");
  graph.addEventListener("click", (e) => {
    const g = e.target.closest("g[data-job]");
    if (g) select(g.getAttribute("data-job"));
  });
  app.querySelector("#search").addEventListener("input", (e) => search(e.target.value));
  app.querySelector("#search").addEventListener("keydown", (e) => { if (e.key === "Enter") nextHit(); });

  let last = null;
  function select(job) {
    selected = job;
    history.replaceState(null, "", "#job=" + encodeURIComponent(job));
    render(last);
  }

  function render(run) {
    if (!run) return;
    const r = run.run;
    document.title = `${r.repo} #${r.number} · Gantry`;
    app.querySelector("#head").innerHTML = `<h1>${esc(r.repo)} · ${esc(r.workflow)} ${badge(r.status)}</h1>
      <div class="meta"><span>#${r.number}</span><span>${esc(r.event)}</span><span>${esc(r.ref)}</span><span><code>${esc(r.sha.slice(0, 12))}</code></span>
      <span>${ago(r.created_at)}</span><span>${took(r.started_at, r.finished_at)}</span></div>`;
    const q = run.queue;
    let notes = "";
    if (q && q.waiting_because) notes += `<div class="note" id="waiting">Waiting: ${esc(q.waiting_because)}</div>`;
    if (q && q.lost) notes += `<div class="note">The worker of this run was lost ${q.lost}× (${esc(q.note || "")}); it was resumed.</div>`;
    for (const e of run.errors || []) notes += `<div class="error">${esc(e)}</div>`;
    if (run.artifacts && run.artifacts.length) notes += `<div id="artifacts" class="muted">Artifacts: ${run.artifacts.map(esc).join(", ")}</div>`;
    app.querySelector("#notes").innerHTML = notes;
    if (!selected && run.jobs.length) selected = (run.jobs.find((j) => j.status === "running") || run.jobs[0]).id;
    jobsList.innerHTML = run.jobs.map((j) => `<li data-job="${esc(j.id)}" class="${j.id === selected ? "selected" : ""}">
      <span>${esc(j.name)}${j.attempt > 1 ? ` <span class="muted">#${j.attempt}</span>` : ""}</span>
      <span>${j.status === "skipped" ? `<button data-play="${esc(j.id)}" title="run this job">▶</button> ` : ""}${badge(j.status)}</span></li>`).join("")
      || `<li class="muted">No job has started yet.</li>`;
    for (const g of graph.querySelectorAll("g[data-job]")) g.classList.toggle("selected", g.getAttribute("data-job") === selected);
    const job = run.jobs.find((j) => j.id === selected);
    if (job) follow(job);
    if (run.artifacts && run.artifacts.length && FINISHED.includes(r.status)) showArtifacts();
  }

  let artifactsShown = false;
  async function showArtifacts() {
    if (artifactsShown) return;
    artifactsShown = true;
    try {
      const list = await api(`/runs/${encodeURIComponent(id)}/artifacts`);
      const el = app.querySelector("#artifacts");
      if (!el) return;
      el.innerHTML = "Artifacts: " + list.artifacts.map((a) => `<strong>${esc(a.name)}</strong> ` + a.files.map((f) =>
        `<a href="/api/runs/${encodeURIComponent(id)}/artifacts/${encodeURIComponent(a.name)}/files/${f.path.split("/").map(encodeURIComponent).join("/")}">${esc(f.path)}</a> <span class="muted">(${f.size} B)</span>`).join(", ")).join("; ");
    } catch (e) { artifactsShown = false; }
  }

  async function showTests(job, ended) {
    const el = app.querySelector("#tests");
    el.innerHTML = "";
    if (!ended && !FINISHED.includes(job.status)) return;
    try {
      const t = await api(`/runs/${encodeURIComponent(id)}/jobs/${encodeURIComponent(job.id)}/tests`);
      const cases = t.cases || [];
      const bad = cases.filter((c) => c.outcome === "failed" || c.outcome === "error");
      el.innerHTML = `<div class="tests"><strong>Tests:</strong> ${cases.length} run, ${bad.length} failed` +
        bad.map((c) => `<div class="error">${esc(c.class)} › ${esc(c.name)}${c.message ? ": " + esc(c.message) : ""}</div>`).join("") + "</div>";
    } catch (e) { /* no test results */ }
  }

  function follow(job) {
    const key = job.id + "#" + job.attempt;
    if (key === streamKey) return;
    streamKey = key;
    if (stream) stream.close();
    app.querySelector("#log-title").textContent = job.name + (job.attempt > 1 ? ` (attempt ${job.attempt})` : "");
    const log = new LogView(app.querySelector("#log"));
    let url = `/api/runs/${encodeURIComponent(id)}/jobs/${encodeURIComponent(job.id)}/live?attempt=${job.attempt}`;
    if (token()) url += "&access_token=" + encodeURIComponent(token());
    stream = new EventSource(url);
    stream.addEventListener("log", (e) => { log.add(e.data); search(app.querySelector("#search").value); });
    stream.addEventListener("end", () => { stream.close(); log.end(); showTests(job, true); });
    showTests(job, false);
  }

  async function refresh() {
    const run = await api(`/runs/${encodeURIComponent(id)}`);
    last = run;
    try {
      const svg = await api(`/runs/${encodeURIComponent(id)}/graph.svg`);
      if (typeof svg === "string") graph.innerHTML = svg;
    } catch (e) { graph.innerHTML = `<span class="muted">${esc(e.message)}</span>`; }
    render(run);
    return run;
  }
  let settled = 0;
  poll(async () => {
    const run = await refresh();
    settled = FINISHED.includes(run.run.status) ? settled + 1 : 0;
    return settled < 3;
  }, 1500);
}

// ---- the log view: ANSI colours, folded groups, line links, search -----------------------------

class LogView {
  constructor(el) {
    this.el = el;
    this.el.innerHTML = "";
    this.stack = [el];
    this.n = 0;
    this.style = {};
  }
  add(text) {
    for (const raw of text.split("\n")) this.line(raw);
  }
  line(raw) {
    const group = raw.match(/^(?:##\[group\]|::group::)(.*)$/);
    if (group) {
      const d = document.createElement("details");
      d.innerHTML = `<summary>${esc(group[1])}</summary>`;
      this.top().appendChild(d);
      this.stack.push(d);
      return;
    }
    if (/^(?:##\[endgroup\]|::endgroup::)/.test(raw)) {
      if (this.stack.length > 1) this.stack.pop();
      return;
    }
    this.n += 1;
    const div = document.createElement("div");
    div.className = "line";
    div.id = "L" + this.n;
    div.innerHTML = `<a href="#L${this.n}">${this.n}</a><span>${this.ansi(raw)}</span>`;
    div.dataset.text = raw.replace(/\x1b\[[0-9;]*m/g, "").toLowerCase();
    this.top().appendChild(div);
    if (this.follow !== false) this.el.scrollTop = this.el.scrollHeight;
  }
  top() { return this.stack[this.stack.length - 1]; }
  end() {
    const done = document.createElement("div");
    done.className = "muted";
    done.style.padding = "4px 12px";
    done.textContent = "— end of log —";
    this.el.appendChild(done);
  }
  ansi(raw) {
    let out = "";
    let last = 0;
    const open = () => {
      const c = [];
      if (this.style.b) c.push("b");
      if (this.style.i) c.push("i");
      if (this.style.u) c.push("u");
      if (this.style.fg) c.push("c" + this.style.fg);
      return c.length ? `<span class="${c.join(" ")}">` : "<span>";
    };
    out += open();
    for (const m of raw.matchAll(/\x1b\[([0-9;]*)m/g)) {
      out += esc(raw.slice(last, m.index)) + "</span>";
      for (const p of (m[1] || "0").split(";").map(Number)) {
        if (p === 0) this.style = {};
        else if (p === 1) this.style.b = true;
        else if (p === 3) this.style.i = true;
        else if (p === 4) this.style.u = true;
        else if (p === 22) this.style.b = false;
        else if (p === 39) this.style.fg = null;
        else if ((p >= 30 && p <= 37) || (p >= 90 && p <= 97)) this.style.fg = p;
      }
      out += open();
      last = m.index + m[0].length;
    }
    return out + esc(raw.slice(last)) + "</span>";
  }
}

let hitIndex = -1;
function search(term) {
  const q = (term || "").trim().toLowerCase();
  const lines = app.querySelectorAll("#log .line");
  let hits = 0;
  for (const l of lines) {
    const hit = q !== "" && l.dataset.text.includes(q);
    l.classList.toggle("hit", hit);
    if (hit) {
      hits += 1;
      for (let p = l.parentElement; p && p.id !== "log"; p = p.parentElement) if (p.tagName === "DETAILS") p.open = true;
    }
  }
  const el = app.querySelector("#hits");
  if (el) el.textContent = q ? hits + " found" : "";
}
function nextHit() {
  const hits = app.querySelectorAll("#log .line.hit");
  if (!hits.length) return;
  hitIndex = (hitIndex + 1) % hits.length;
  hits[hitIndex].scrollIntoView({ block: "center" });
}

// ---- routing ---------------------------------------------------------------------------------

function go(path) { history.pushState(null, "", path); route(); }
function route() {
  clearTimeout(timer);
  if (stream) { stream.close(); stream = null; }
  const m = location.pathname.match(/^\/runs\/([^/]+)$/);
  if (m) runPage(decodeURIComponent(m[1])); else runsPage();
}
window.addEventListener("popstate", route);
route();
