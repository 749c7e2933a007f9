// The fleet console (#22): a page per route of the hash (#/overview,
// #/rollouts, ...), each drawn from the admin API with the session cookie;
// changes carry the session's CSRF token (kept in sessionStorage, from the
// login answer). Text is always set as text (never parsed as HTML). Pages
// that move by themselves (overview, rollouts, fragmentation) are redrawn
// every 5 s. Charts are inline SVG drawn here.
"use strict";

const RANK = { viewer: 0, operator: 1, admin: 2 };
const S = { who: null, csrf: sessionStorage.getItem("outpost-csrf"), timer: null };
const main = () => document.getElementById("main");

function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const headers = { "content-type": "application/json" };
  if (method !== "GET" && S.csrf) headers["x-csrf-token"] = S.csrf;
  const r = await fetch(path, { method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  const v = text ? JSON.parse(text) : null;
  if (!r.ok) throw new ApiError(r.status, (v && v.error && v.error.message) || r.statusText);
  return v;
}

const may = (role) => S.who && RANK[S.who.role] >= RANK[role];
const fmt = (x, d = 0) => (x === null || x === undefined) ? "–" : Number(x).toFixed(d);
const pct = (x) => (x === null || x === undefined) ? "–" : (100 * x).toFixed(2) + " %";
// Seconds as the largest whole unit: 7200 → "2 h", 90 → "90 s".
const duration = (s) => s % 86400 === 0 ? `${s / 86400} d` : s % 3600 === 0 ? `${s / 3600} h` : s % 60 === 0 ? `${s / 60} min` : `${s} s`;
const when = (t) => t ? String(t).replace("T", " ").replace("Z", "") : "–";
const mib = (b) => (b / 1048576).toFixed(1) + " MiB";

function table(headers, rows, numeric = []) {
  return h("div", { class: "scroll" }, h("table", {},
    h("thead", {}, h("tr", {}, headers.map((x, i) => h("th", { class: numeric.includes(i) ? "num" : null, scope: "col" }, x)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c, i) => h("td", { class: numeric.includes(i) ? "num" : null }, c)))))));
}

function card(n, label) {
  return h("div", { class: "card" }, h("div", { class: "n" }, n), h("div", { class: "l" }, label));
}

// A bar chart of {label, value}; width fixed, scaled down by CSS.
function bars(title, data) {
  const w = 640, rowH = 22, top = 24, left = 230;
  const max = Math.max(1, ...data.map((d) => d.value));
  const svg = svgEl("svg", { viewBox: `0 0 ${w} ${top + rowH * data.length + 8}`, role: "img", "aria-label": title });
  svg.append(svgText(8, 16, title));
  data.forEach((d, i) => {
    const y = top + i * rowH, bw = (w - left - 60) * d.value / max;
    svg.append(svgText(8, y + 14, d.label.slice(0, 34)));
    svg.append(svgEl("rect", { x: left, y: y + 3, width: Math.max(1, bw), height: rowH - 8, fill: "#0b5cad" }));
    svg.append(svgText(left + bw + 6, y + 14, String(d.value)));
  });
  return svg;
}

// A scatter of {x, y, label} with axis names.
function scatter(title, xName, yName, pts) {
  const w = 640, hgt = 300, pad = 44;
  const xs = pts.map((p) => p.x), ys = pts.map((p) => p.y);
  const x0 = Math.min(...xs, 0), x1 = Math.max(...xs, 1), y0 = Math.min(...ys, 0), y1 = Math.max(...ys, 1);
  const X = (x) => pad + (w - 2 * pad) * (x - x0) / ((x1 - x0) || 1);
  const Y = (y) => hgt - pad - (hgt - 2 * pad) * (y - y0) / ((y1 - y0) || 1);
  const svg = svgEl("svg", { viewBox: `0 0 ${w} ${hgt}`, role: "img", "aria-label": title });
  svg.append(svgText(8, 16, title));
  svg.append(svgEl("line", { x1: pad, y1: hgt - pad, x2: w - pad, y2: hgt - pad, stroke: "#999" }));
  svg.append(svgEl("line", { x1: pad, y1: pad, x2: pad, y2: hgt - pad, stroke: "#999" }));
  svg.append(svgText(w / 2 - 40, hgt - 10, xName));
  svg.append(svgText(4, pad - 8, yName));
  for (const p of pts) {
    svg.append(svgEl("circle", { cx: X(p.x), cy: Y(p.y), r: 5, fill: "#0b5cad" }));
    svg.append(svgText(X(p.x) + 7, Y(p.y) - 6, p.label));
  }
  return svg;
}

// Lines over time: series of {label, points: [{t (ms), y}]}.
function lines(title, yName, series) {
  const w = 640, hgt = 260, pad = 44, colors = ["#0b5cad", "#c2410c", "#137333", "#7c3aed", "#b42318"];
  const all = series.flatMap((s) => s.points);
  const svg = svgEl("svg", { viewBox: `0 0 ${w} ${hgt}`, role: "img", "aria-label": title });
  svg.append(svgText(8, 16, title));
  if (!all.length) { svg.append(svgText(pad, hgt / 2, "no data in this window")); return svg; }
  const t0 = Math.min(...all.map((p) => p.t)), t1 = Math.max(...all.map((p) => p.t));
  const y1 = Math.max(...all.map((p) => p.y), 0) || 1;
  const X = (t) => pad + (w - 2 * pad) * (t - t0) / ((t1 - t0) || 1);
  const Y = (y) => hgt - pad - (hgt - 2 * pad) * y / y1;
  svg.append(svgEl("line", { x1: pad, y1: hgt - pad, x2: w - pad, y2: hgt - pad, stroke: "#999" }));
  svg.append(svgText(4, pad - 8, `${yName} (max ${Number(y1.toPrecision(3))})`));
  svg.append(svgText(pad, hgt - 12, new Date(t0).toISOString().slice(5, 16).replace("T", " ")));
  svg.append(svgText(w - pad - 70, hgt - 12, new Date(t1).toISOString().slice(5, 16).replace("T", " ")));
  series.forEach((s, i) => {
    const c = colors[i % colors.length];
    const pts = s.points.map((p) => `${X(p.t).toFixed(1)},${Y(p.y).toFixed(1)}`).join(" ");
    svg.append(svgEl("polyline", { points: pts, fill: "none", stroke: c, "stroke-width": 2 }));
    for (const p of s.points) svg.append(svgEl("circle", { cx: X(p.t), cy: Y(p.y), r: 2.5, fill: c }));
    const key = svgText(w - pad - 150, pad + 14 * i, s.label);
    key.setAttribute("fill", c);
    svg.append(key);
  });
  return svg;
}

function svgEl(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function svgText(x, y, s) {
  const t = svgEl("text", { x, y });
  t.textContent = s;
  return t;
}

// Asks before a change; resolves to the reason typed (or null: cancelled).
function confirmChange(text, wantReason) {
  const d = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  const reason = document.getElementById("confirm-reason");
  reason.value = "";
  document.getElementById("confirm-reason-label").hidden = !wantReason;
  d.returnValue = "";
  d.showModal();
  (wantReason ? reason : document.getElementById("confirm-ok")).focus();
  return new Promise((res) => d.addEventListener("close", () => res(d.returnValue === "ok" ? reason.value || "from the console" : null), { once: true }));
}

async function act(text, method, path, body, wantReason) {
  const reason = await confirmChange(text, wantReason);
  if (reason === null) return;
  try {
    await api(method, path, wantReason ? Object.assign({ reason }, body || {}) : body);
  } catch (e) {
    flash(e.message);
  }
  await show();
}

function flash(msg) {
  main().prepend(h("p", { class: "error", role: "alert" }, msg));
}

// ---- pages ---------------------------------------------------------------

async function overview() {
  const s = await api("GET", "/admin/v1/status");
  const frag = await api("GET", "/admin/v1/fragmentation?stale_days=7");
  const hour = await api("GET", "/admin/v1/cohorts?minutes=60");
  const live = s.rollouts.filter((r) => r.state === "active" || r.state === "paused");
  const alerts = [];
  if (s.frozen) alerts.push(`Kill switch on since ${when(s.frozen.at)}: ${s.frozen.reason}`);
  for (const r of s.rollouts) {
    if (r.state === "aborted" || r.state === "rolled_back") alerts.push(`Rollout ${r.id} (${r.model}@${r.version}) ${r.state}: ${r.reason || "no reason given"}`);
  }
  // The last hour per cohort: a crash-rate spike (over 1 %) or any
  // failed canary is worth a look.
  for (const c of hour) {
    const where = `${c.model}@${c.model_version} on ${c.device_class} (${c.channel})`;
    if (c.crash_rate > 0.01) alerts.push(`Crash rate ${pct(c.crash_rate)} in the last hour: ${where}`);
    if (c.canary_fail_rate > 0) alerts.push(`Canary failures ${pct(c.canary_fail_rate)} in the last hour: ${where}`);
  }
  return [
    h("h1", {}, "Overview"),
    h("div", { class: "cards" },
      card(s.devices, "devices"),
      card(s.online_devices, `online (checked in within ${duration(s.online_window_s)})`),
      card(s.devices - frag.stale, "seen in 7 days"),
      card(frag.stale, "stale (7 days)"),
      card(live.length, "rollouts in flight"),
      card(s.blocked_devices, "devices blocked from a release")),
    h("h2", {}, "Alerts"),
    alerts.length ? alerts.map((a) => h("div", { class: "alert", role: "status" }, a)) : h("p", { class: "ok" }, "No alerts."),
    h("h2", {}, "Releases per channel"),
    table(["Channel", "Releases", "Devices"], s.channels.map((c) => [c.name, Object.entries(c.releases || {}).map(([m, v]) => `${m}@${v}`).join(", ") || "–", c.devices]), [2]),
    h("h2", {}, "Rollouts in flight"),
    live.length ? rolloutTable(live) : h("p", {}, "None."),
  ];
}

function rolloutTable(rs) {
  return table(["ID", "Release", "Channel", "State", "Share", "Stages", "Next advance", "Devices on it", "Reason", ""],
    rs.map((r) => [r.id, `${r.model}@${r.version}`, r.channel, r.state, fmt(r.percent, 1) + " %",
      r.stages.map((x) => fmt(x, 0)).join(" → "), when(r.next_advance_at), r.devices_on_release, r.reason || "", rolloutActions(r)]), [0, 4, 7]);
}

function rolloutActions(r) {
  if (!may("operator") || !(r.state === "active" || r.state === "paused")) return "";
  const b = (label, action, cls) => h("button", { type: "button", class: cls, "data-action": action, "data-rollout": r.id,
    onclick: () => act(`${label} rollout ${r.id} (${r.model}@${r.version} on ${r.channel})?`, "POST", `/admin/v1/rollouts/${r.id}/${action}`, {}, true) }, label);
  return h("div", { class: "actions" },
    r.state === "active" ? b("Pause", "pause") : b("Resume", "resume"),
    b("Advance", "advance"), b("Complete", "complete"), b("Roll back", "rollback", "danger"));
}

async function rollouts() {
  const rs = await api("GET", "/admin/v1/rollouts");
  const s = await api("GET", "/admin/v1/status");
  const kill = may("admin") ? h("button", { type: "button", class: "danger", id: "kill-switch",
    onclick: () => act(s.frozen ? "Release the kill switch (rollouts move again)?" : "Pull the kill switch: freeze every rollout?",
      "POST", "/admin/v1/kill-switch", { freeze: !s.frozen }, true) }, s.frozen ? "Release the kill switch" : "Kill switch") : null;
  return [h("h1", {}, "Rollouts"), s.frozen ? h("div", { class: "alert" }, `Frozen: ${s.frozen.reason}`) : null,
    kill, h("h2", {}, "All rollouts"), rs.length ? rolloutTable(rs.slice().reverse()) : h("p", {}, "No rollouts yet.")];
}

async function fragmentation() {
  const f = await api("GET", "/admin/v1/fragmentation?stale_days=7");
  const byRelease = {};
  for (const c of f.cells) byRelease[`${c.model}@${c.model_version}`] = (byRelease[`${c.model}@${c.model_version}`] || 0) + c.devices;
  return [h("h1", {}, "Fragmentation"),
    h("p", {}, `${f.devices} devices, ${f.stale} not seen for ${f.stale_days} days.`),
    bars("Devices per release", Object.entries(byRelease).map(([label, value]) => ({ label, value }))),
    h("h2", {}, "Over time"),
    lines("Devices first issued each release", "devices", (f.adoption || []).map((a) => ({ label: `${a.model}@${a.model_version}`,
      points: a.points.map(([at, n]) => ({ t: Date.parse(at), y: n })) }))),
    h("h2", {}, "Release × class × channel"),
    table(["Release", "Class", "Channel", "Devices"], f.cells.map((c) => [`${c.model}@${c.model_version}`, c.device_class, c.channel, c.devices]), [3]),
    h("h2", {}, "Rollout reach"),
    table(["Rollout", "Release", "Channel", "State", "Share", "Targeted", "On it", "Reached"], (f.rollouts || []).map((r) => [r.id, `${r.model}@${r.version}`, r.channel, r.state,
      fmt(r.percent, 1) + " %", r.targeted, r.on_release, fmt(r.reached_pct, 1) + " %"]), [4, 5, 6, 7])];
}

const METRICS = { ttft_ms_p50: "TTFT p50 (ms)", tok_s_p50: "tok/s p50", error_rate: "error rate", crash_rate: "crash rate",
  canary_fail_rate: "canary failure rate", thermal_hot: "thermal-hot reports", memory_peak_mib_p95: "peak memory p95 (MiB)",
  inferences: "inferences" };

async function cohorts() {
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  const minutes = Number(q.get("minutes") || 1440);
  const cs = await api("GET", `/admin/v1/cohorts?minutes=${minutes}`);
  const only = new URLSearchParams({ minutes });
  for (const k of ["class", "channel"]) if (q.get(k)) only.set(k, q.get(k));
  const series = await api("GET", `/admin/v1/cohorts/series?${only}`);
  const classes = [...new Set(cs.map((c) => c.device_class))], channels = [...new Set(cs.map((c) => c.channel))];
  const narrow = (key, label, values) => h("label", {}, label, h("select", { id: `only-${key}`, onchange: (e) => {
    const p = new URLSearchParams(q);
    if (e.target.value) p.set(key, e.target.value); else p.delete(key);
    location.hash = `#/cohorts?${p}`;
  } }, [h("option", { value: "" }, "all")].concat(values.map((v) => h("option", { value: v, selected: q.get(key) === v }, v)))));
  const releases = [...new Set(series.map((l) => `${l.model}@${l.model_version}`).concat(cs.map((c) => `${c.model}@${c.model_version}`)))];
  const sel = (id, label, options, value) => {
    const e = h("select", { id, onchange: draw }, options.map(([v, t]) => h("option", { value: v }, t)));
    if (value !== undefined) e.value = value;
    return h("label", {}, label, e);
  };
  const a = sel("cmp-a", "Release A", releases.map((r) => [r, r]), releases[0]);
  const b = sel("cmp-b", "Release B", releases.map((r) => [r, r]), releases[1] || releases[0]);
  const metric = sel("metric", "Metric", Object.entries(METRICS), "ttft_ms_p50");
  const chart = h("div", { id: "series" }), pair = h("div", { id: "pair" });
  function draw() {
    const [ra, rb, m] = [a.querySelector("select").value, b.querySelector("select").value, metric.querySelector("select").value];
    const line = (rel) => series.find((l) => `${l.model}@${l.model_version}` === rel);
    const picked = [...new Set([ra, rb])].map((rel) => ({ label: rel, points: ((line(rel) || {}).points || [])
      .filter((p) => p[m] !== null && p[m] !== undefined).map((p) => ({ t: Date.parse(p.at), y: p[m] })) }));
    chart.replaceChildren(lines(`${METRICS[m]} over the last ${minutes} minutes`, METRICS[m], picked));
    const rows = (rel) => cs.filter((c) => `${c.model}@${c.model_version}` === rel);
    const avg = (xs) => { const v = xs.filter((x) => x !== null && x !== undefined); return v.length ? v.reduce((s, x) => s + x, 0) / v.length : null; };
    const sum = (rel) => { const r = rows(rel); return { devices: r.reduce((s, c) => s + c.devices, 0), ttft: avg(r.map((c) => c.ttft_ms_p50)),
      tok: avg(r.map((c) => c.tok_s_p50)), err: avg(r.map((c) => c.error_rate)), crash: avg(r.map((c) => c.crash_rate)) }; };
    const [x, y] = [sum(ra), sum(rb)];
    pair.replaceChildren(table(["Metric", ra || "–", rb || "–"], [
      ["Devices", x.devices, y.devices], ["TTFT p50 (ms)", fmt(x.ttft), fmt(y.ttft)], ["tok/s p50", fmt(x.tok, 1), fmt(y.tok, 1)],
      ["Error rate", pct(x.err), pct(y.err)], ["Crash rate", pct(x.crash), pct(y.crash)]], [1, 2]));
  }
  draw();
  return [h("h1", {}, "Cohorts"),
    h("p", {}, `Telemetry per release over the last ${minutes} minutes; every cohort (class × channel × release) below.`),
    h("div", { class: "filters" }, a, b, metric, narrow("class", "Device class", classes), narrow("channel", "Channel", channels)), chart, h("h2", {}, "Two releases side by side"), pair,
    h("h2", {}, "Every cohort"),
    table(["Class", "Channel", "Release", "Devices", "TTFT p50 ms", "tok/s p50", "Errors", "Crashes", "Canary fails", "Thermal hot", "Peak memory p95"],
      cs.map((c) => [c.device_class, c.channel, `${c.model}@${c.model_version}`, c.devices, fmt(c.ttft_ms_p50), fmt(c.tok_s_p50, 1),
        pct(c.error_rate), pct(c.crash_rate), pct(c.canary_fail_rate), c.thermal_hot, c.memory_peak_mib_p95 == null ? "–" : fmt(c.memory_peak_mib_p95) + " MiB"]), [3, 4, 5, 9, 10])];
}

async function devices() {
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  const offset = Number(q.get("offset") || 0), limit = 50;
  const params = new URLSearchParams({ limit, offset });
  for (const k of ["channel", "class"]) if (q.get(k)) params.set(k, q.get(k));
  const list = await api("GET", `/admin/v1/devices?${params}`);
  const search = q.get("q") || "";
  const shown = list.devices.filter((d) => !search || d.id.includes(search));
  const input = (name, label) => h("label", {}, label, h("input", { name, value: q.get(name) || "", "aria-label": label }));
  const form = h("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    const f = new FormData(e.target), p = new URLSearchParams();
    for (const [k, v] of f) if (v) p.set(k, v);
    location.hash = `#/devices?${p}`;
  } }, input("q", "Device id contains"), input("channel", "Channel"), input("class", "Device class"), h("button", { type: "submit" }, "Filter"));
  const page = (o) => { const p = new URLSearchParams(q); p.set("offset", o); return `#/devices?${p}`; };
  return [h("h1", {}, "Devices"), form,
    h("p", {}, `${list.total} devices; ${offset + 1}–${Math.min(offset + limit, list.total)} shown.`),
    table(["Device", "Channel", "Class", "OS", "App", "Last check-in", "Releases"], shown.map((d) => [
      h("a", { href: `#/device/${d.id}` }, d.id), d.channel, d.profile ? d.profile.device_class : "–", d.profile ? d.profile.os : "–",
      d.profile ? d.profile.app_version : "–", when(d.last_seen_at), Object.entries(d.assigned || {}).map(([m, a]) => `${m}@${a.model_version}`).join(", ")])),
    h("p", { class: "actions" }, offset > 0 ? h("a", { href: page(Math.max(0, offset - limit)) }, "← Previous") : null,
      offset + limit < list.total ? h("a", { href: page(offset + limit) }, "Next →") : null)];
}

async function device(id) {
  const d = await api("GET", `/admin/v1/devices/${encodeURIComponent(id)}`);
  const p = d.profile || {};
  return [h("h1", {}, `Device ${d.id}`),
    table(["Field", "Value"], [["App", d.app || "default"], ["Channel", d.channel], ["Registered", when(d.registered_at)], ["Last check-in", when(d.last_seen_at)],
      ["Class", p.device_class || "–"], ["OS", p.os || "–"], ["App version", p.app_version || "–"], ["Engine", p.engine_version || "–"],
      ["RAM", p.ram_bytes ? mib(p.ram_bytes) : "–"], ["Region", p.region || "–"]]),
    h("h2", {}, "Installs (last manifest per model)"),
    table(["Model", "Release", "Manifest version"], Object.entries(d.assigned || {}).map(([m, a]) => [m, a.model_version, a.manifest_version])),
    h("h2", {}, "History (every release issued, when first)"),
    table(["When", "Release"], (d.history || []).map((x) => [when(x.at), `${x.model}@${x.model_version}`])),
    h("h2", {}, "Pins"),
    Object.keys(d.pins || {}).length ? table(["Model", "Pinned release"], Object.entries(d.pins)) : h("p", {}, "No pins."),
    h("h2", {}, "Blocked"),
    Object.keys(d.blocked || {}).length ? table(["Model", "Releases it cannot load"], Object.entries(d.blocked).map(([m, bs]) => [m, bs.map((b) => `${b.version}: ${b.reason}`).join("; ")])) : h("p", {}, "Nothing blocked.")];
}

async function releases() {
  const rs = await api("GET", "/admin/v1/releases");
  const rows = [], pts = [];
  for (const r of rs) {
    for (const v of r.meta.variants) {
      const q = v.quality || {};
      rows.push([`${r.meta.model}@${r.meta.version}`, r.meta.app || "default", v.quantization, mib(v.length), q.kld_mean ?? q.min_cosine ?? "–", q.same_top_pct ?? "–", r.revoked ? "revoked" : "live"]);
      if (q.kld_mean !== undefined) pts.push({ x: v.length / 1048576, y: q.kld_mean, label: `${r.meta.version} ${v.quantization}` });
    }
  }
  return [h("h1", {}, "Releases"),
    table(["Release", "App", "Variant", "Size", "KLD (or cosine)", "Same top %", "State"], rows, [3, 4, 5]),
    pts.length ? [h("h2", {}, "Quality against size"), scatter("KLD against size per variant", "size (MiB)", "KLD mean (lower is better)", pts)] : null];
}

async function audit() {
  const a = await api("GET", "/admin/v1/audit?limit=200");
  return [h("h1", {}, "Audit log"),
    table(["When", "Who", "What", "On", "From / detail"], a.map((r) => [when(r.at), r.actor, r.action, r.target,
      r.detail && r.detail.from ? `${r.detail.from}` : JSON.stringify(r.detail || {}).slice(0, 120)]))];
}

async function tokens() {
  const ts = await api("GET", "/admin/v1/tokens");
  const out = h("div", { id: "new-token" });
  const form = h("form", { class: "filters", id: "token-form", onsubmit: async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    try {
      const apps = String(f.get("apps") || "").split(",").map((a) => a.trim()).filter((a) => a);
      const t = await api("POST", "/admin/v1/tokens", { name: f.get("name"), role: f.get("role"), expires_in_days: Number(f.get("days")), ...(apps.length ? { apps } : {}) });
      await show();
      document.getElementById("new-token").replaceChildren(h("p", {}, `Token ${t.id} (${t.role}); copy it now, it is not shown again:`), h("p", { class: "secret", id: "token-secret" }, t.token));
    } catch (err) { flash(err.message); }
  } },
  h("label", {}, "Name", h("input", { name: "name", required: true, pattern: "[A-Za-z0-9._-]{1,64}" })),
  h("label", {}, "Role", h("select", { name: "role" }, ["viewer", "operator", "admin"].map((r) => h("option", { value: r }, r)))),
  h("label", {}, "Days", h("input", { name: "days", type: "number", min: 1, max: 365, value: 90 })),
  h("label", {}, "Apps (comma-separated; empty: every app)", h("input", { name: "apps" })),
  h("button", { type: "submit", class: "primary" }, "Create token"));
  return [h("h1", {}, "API tokens"), form, out,
    table(["Id", "Name", "Role", "Apps", "Created by", "Expires", "State", ""], ts.map((t) => [t.id, t.name, t.role, (t.apps || []).join(", ") || "all", t.created_by,
      new Date(t.expires_at * 1000).toISOString().slice(0, 10), t.live ? "live" : (t.revoked_at ? "revoked" : "expired"),
      t.live ? h("button", { type: "button", class: "danger", "data-revoke": t.id,
        onclick: () => act(`Revoke token ${t.name} (${t.id})? Whatever uses it stops working at once.`, "POST", `/admin/v1/tokens/${t.id}/revoke`, {}, false) }, "Revoke") : ""]))];
}

const PAGES = { overview, fragmentation, rollouts, cohorts, devices, releases, audit, tokens };

// ---- shell ---------------------------------------------------------------

function loginPage(message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("who").textContent = "";
  const err = h("p", { class: "error", role: "alert" }, message || "");
  const form = h("form", { class: "login", id: "login", onsubmit: async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    try {
      const l = await api("POST", "/console/v1/login", { name: f.get("name"), password: f.get("password") });
      S.csrf = l.csrf_token;
      sessionStorage.setItem("outpost-csrf", S.csrf);
      S.who = null;
      await show();
    } catch (x) { err.textContent = x.message; }
  } },
  h("h1", {}, "Sign in"),
  h("label", {}, "User name", h("input", { name: "name", autocomplete: "username", required: true })),
  h("label", {}, "Password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
  h("button", { type: "submit", class: "primary" }, "Sign in"), err);
  main().replaceChildren(form);
  form.querySelector("input").focus();
}

async function show() {
  clearTimeout(S.timer);
  if (!S.who) {
    try { S.who = await api("GET", "/admin/v1/whoami"); } catch (e) { return loginPage(e.status === 401 ? "" : e.message); }
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("logout").hidden = !S.who.session;
  document.getElementById("who").textContent = `${S.who.actor} · ${S.who.role}`;
  for (const a of document.querySelectorAll("nav a")) {
    a.hidden = a.dataset.role ? !may(a.dataset.role) : false;
  }
  const [path] = (location.hash.slice(2) || "overview").split("?");
  const [name, arg] = path.split("/");
  for (const a of document.querySelectorAll("nav a")) {
    if (a.getAttribute("href") === `#/${name}`) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const started = performance.now();
  try {
    const content = name === "device" ? await device(decodeURIComponent(arg || "")) : await (PAGES[name] || overview)();
    main().replaceChildren(...[content].flat(3).filter((x) => x !== null && x !== undefined));
    document.body.dataset.page = name;
    document.body.dataset.renderMs = String(Math.round(performance.now() - started));
  } catch (e) {
    if (e.status === 401) { S.who = null; return loginPage("Your session ended; sign in again."); }
    main().replaceChildren(h("h1", {}, "Something went wrong"), h("p", { class: "error", role: "alert" }, e.message));
  }
  if (["overview", "rollouts", "fragmentation"].includes(name)) S.timer = setTimeout(() => { if (!document.getElementById("confirm").open) show(); }, 5000);
}

document.getElementById("logout").addEventListener("click", async () => {
  try { await api("POST", "/console/v1/logout"); } catch (e) { /* the session may be gone already */ }
  sessionStorage.removeItem("outpost-csrf");
  S.who = null; S.csrf = null;
  loginPage("Signed out.");
});
// Enter in the reason field confirms (the only submit button); Escape or
// Cancel closes without a change.
document.getElementById("confirm-cancel").addEventListener("click", () => document.getElementById("confirm").close("cancel"));
window.addEventListener("hashchange", show);
show();
