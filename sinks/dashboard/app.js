// reelscope dashboard: plain JS, no build step. Every piece of text from the API is inserted with
// textContent (never innerHTML), so titles, transcripts and on-screen text cannot inject markup.
"use strict";

const TOKEN_KEY = "reelscope.token";
const TERMINAL = new Set(["complete", "degraded", "failed"]);
const LIVE_REFRESH_MS = 2000;

const state = {
  selected: null,        // video id shown in the detail view
  videoStream: null,     // EventSource for the selected video
  allStream: null,       // EventSource for every video in flight
  inflight: new Map(),   // video id -> last progress event
  doc: null,             // the selected video's last (provisional) reconstruction
  loading: false,        // a detail load is running
  liveTimer: null,       // throttles provisional reconstruction reloads
  lastLiveLoad: 0,
  events: 0,             // progress events received (tests read it)
};
window.reelscope = state;

// --- token & API ----------------------------------------------------------------------------------------

function takeTokenFromUrl() {
  const params = new URLSearchParams(location.search);
  if (params.has("token")) {
    sessionStorage.setItem(TOKEN_KEY, params.get("token"));
    params.delete("token");
    const query = params.toString();
    history.replaceState(null, "", location.pathname + (query ? `?${query}` : "") + location.hash);
  }
}

const token = () => sessionStorage.getItem(TOKEN_KEY) || "";

function authHeaders() {
  return token() ? { Authorization: `Bearer ${token()}` } : {};
}

class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { ...authHeaders(), ...(options.headers || {}) },
  });
  if (response.status === 401) askForToken();
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail || detail;
    } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, detail);
  }
  return response;
}

const apiJson = async (path, options) => (await api(path, options)).json();

function streamUrl(path) {
  return token() ? `${path}?token=${encodeURIComponent(token())}` : path;
}

function askForToken() {
  document.getElementById("token-form").hidden = false;
}

// --- DOM helpers ----------------------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "style") Object.assign(el.style, value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const fmt = (t) => {
  if (typeof t !== "number" || !isFinite(t)) return "–";
  const m = Math.floor(t / 60);
  return `${m}:${(t - m * 60).toFixed(1).padStart(4, "0")}`;
};

function basename(uri) {
  const last = String(uri || "").split(/[\\/]/).pop() || "";
  try {
    return decodeURIComponent(last);
  } catch (_) {
    return last; // not percent-encoded after all
  }
}

function badge(status) {
  return h("span", { class: `badge ${status || "unknown"}` }, status || "unknown");
}

function bar(received, expected, label) {
  const share = expected ? Math.min(1, received / expected) : 0;
  return h(
    "div",
    { class: "bar", title: `${label}: ${received} / ${expected ?? "?"}` },
    h("span", { class: "bar-label" }, label),
    h("span", { class: "bar-track" }, h("span", { class: "bar-fill", style: { width: `${share * 100}%` } })),
    h("span", { class: "bar-count" }, `${received}/${expected ?? "?"}`),
  );
}

function progressBars(progress) {
  const names = Object.keys(progress || {}).sort();
  if (!names.length) return h("p", { class: "muted" }, "waiting for the producer…");
  return h("div", { class: "bars" }, names.map((n) => bar(progress[n].received, progress[n].expected, n)));
}

// --- stats, lists ---------------------------------------------------------------------------------------

async function refreshStats() {
  try {
    const s = await apiJson("/stats");
    document.getElementById("stat-throughput").textContent = `${s.throughput_per_min.toFixed(1)}/min`;
    document.getElementById("stat-inflight").textContent = String(s.in_flight);
    const lag = document.getElementById("stat-lag");
    lag.textContent = s.consumer_lag === null ? "unavailable" : String(s.consumer_lag);
    lag.title = s.consumer_lag_reason || "";
    const spark = document.getElementById("stat-spark");
    const peak = Math.max(1, ...s.per_minute);
    spark.replaceChildren(
      ...s.per_minute.map((n) => h("i", { style: { height: `${(n / peak) * 100}%` }, title: `${n}` })),
    );
  } catch (err) {
    console.warn("stats", err);
  }
}

async function refreshVideos() {
  try {
    const rows = await apiJson("/videos?limit=30");
    const list = document.getElementById("videos");
    list.replaceChildren(
      ...rows.map((v) =>
        h(
          "li",
          {
            dataset: { videoId: v.video_id, status: v.status },
            class: v.video_id === state.selected ? "selected" : "",
            onclick: () => select(v.video_id),
          },
          h("span", { class: "name", title: v.uri }, v.video_id),
          badge(v.status),
        ),
      ),
    );
    if (!rows.length) list.append(h("li", { class: "empty" }, "no videos yet"));
  } catch (err) {
    console.warn("videos", err);
  }
}

let listTimer = null;
function refreshVideosSoon() {
  if (listTimer) return;
  listTimer = setTimeout(() => {
    listTimer = null;
    refreshVideos();
  }, 1000);
}

function renderInflight() {
  const list = document.getElementById("inflight");
  const items = [...state.inflight.values()];
  list.replaceChildren(
    ...items.map((v) =>
      h(
        "li",
        { dataset: { videoId: v.video_id }, onclick: () => select(v.video_id) },
        h("div", { class: "inflight-head" }, h("span", { class: "name", title: v.uri }, v.video_id), badge(v.status)),
        progressBars(v.progress),
      ),
    ),
  );
  if (!items.length) list.append(h("li", { class: "empty" }, "nothing in flight"));
}

// --- live streams ---------------------------------------------------------------------------------------

function setLive(ok) {
  const el = document.getElementById("live-state");
  el.classList.toggle("ok", ok);
  el.title = ok ? "live updates connected" : "live updates reconnecting";
}

function openAllStream() {
  if (state.allStream) state.allStream.close();
  const es = new EventSource(streamUrl("/events"));
  state.allStream = es;
  es.onopen = () => setLive(true);
  es.onerror = () => {
    setLive(false);
    if (es.readyState === EventSource.CLOSED) askForToken(); // refused (e.g. 401): no auto-retry
  };
  es.addEventListener("progress", (e) => {
    const v = JSON.parse(e.data);
    state.events += 1;
    if (TERMINAL.has(v.status)) state.inflight.delete(v.video_id);
    else state.inflight.set(v.video_id, v);
    renderInflight();
    if (!document.querySelector(`#videos li[data-video-id="${CSS.escape(v.video_id)}"]`)) refreshVideosSoon();
  });
  es.addEventListener("complete", (e) => {
    const v = JSON.parse(e.data);
    state.inflight.delete(v.video_id);
    renderInflight();
    refreshVideos();
    refreshStats();
  });
}

function openVideoStream(videoId) {
  if (state.videoStream) state.videoStream.close();
  const es = new EventSource(streamUrl(`/videos/${encodeURIComponent(videoId)}/events`));
  state.videoStream = es;
  es.addEventListener("progress", (e) => {
    const v = JSON.parse(e.data);
    state.events += 1;
    if (v.video_id !== state.selected) return;
    renderProgress(v);
    scheduleLiveLoad();
  });
  es.addEventListener("complete", (e) => {
    es.close();
    const v = JSON.parse(e.data);
    if (v.video_id === state.selected) loadDetail(v.video_id);
  });
}

function scheduleLiveLoad() {
  if (state.liveTimer) return;
  const wait = Math.max(0, LIVE_REFRESH_MS - (Date.now() - state.lastLiveLoad));
  state.liveTimer = setTimeout(() => {
    state.liveTimer = null;
    if (state.selected) loadDetail(state.selected);
  }, wait);
}

// --- submit ---------------------------------------------------------------------------------------------

function message(text, isError = false) {
  const el = document.getElementById("submit-message");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function upload(event) {
  event.preventDefault();
  const input = document.getElementById("upload-file");
  if (!input.files.length) return;
  const form = new FormData();
  form.append("file", input.files[0]);
  const bar = document.getElementById("upload-progress");
  const xhr = new XMLHttpRequest(); // XHR, not fetch: it reports upload progress
  xhr.open("POST", "/videos/upload");
  for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) bar.value = e.loaded / e.total;
  };
  xhr.onload = () => {
    bar.hidden = true;
    let body = {};
    try {
      body = JSON.parse(xhr.responseText);
    } catch (_) { /* not JSON */ }
    if (xhr.status === 202) {
      message(`uploaded as ${body.video_id}`);
      input.value = "";
      select(body.video_id);
      refreshVideos();
    } else {
      if (xhr.status === 401) askForToken();
      message(`upload refused (${xhr.status}): ${body.detail || xhr.statusText}`, true);
    }
  };
  xhr.onerror = () => {
    bar.hidden = true;
    message("upload failed: connection lost", true);
  };
  bar.value = 0;
  bar.hidden = false;
  message(`uploading ${input.files[0].name}…`);
  xhr.send(form);
}

async function submitUri(event) {
  event.preventDefault();
  const input = document.getElementById("uri-input");
  try {
    const body = await apiJson("/videos", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ uri: input.value.trim() }),
    });
    message(`submitted as ${body.video_id}`);
    input.value = "";
    select(body.video_id);
    refreshVideos();
  } catch (err) {
    message(`submit refused: ${err.message}`, true);
  }
}

// --- detail view ----------------------------------------------------------------------------------------

function select(videoId) {
  if (location.hash !== `#video=${encodeURIComponent(videoId)}`) {
    location.hash = `video=${encodeURIComponent(videoId)}`; // hashchange calls select again
    return;
  }
  state.selected = videoId;
  state.doc = null;
  for (const li of document.querySelectorAll("#videos li")) {
    li.classList.toggle("selected", li.dataset.videoId === videoId);
  }
  const detail = document.getElementById("detail");
  detail.dataset.videoId = videoId;
  detail.dataset.status = "";
  detail.replaceChildren(h("div", { class: "placeholder" }, `loading ${videoId}…`));
  openVideoStream(videoId);
  loadDetail(videoId);
}

async function download(videoId, kind) {
  const paths = {
    json: `reconstruction.json`,
    vtt: `export.vtt`,
    md: `export.md`,
  };
  try {
    const response = await api(`/videos/${encodeURIComponent(videoId)}/${paths[kind]}`);
    const url = URL.createObjectURL(await response.blob());
    const a = h("a", { href: url, download: `${videoId}.${kind}` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) {
    message(`download failed: ${err.message}`, true);
  }
}

function renderProgress(v) {
  const slot = document.getElementById("detail-progress");
  if (!slot) return;
  slot.replaceChildren(TERMINAL.has(v.status) ? "" : progressBars(v.progress));
  const head = document.getElementById("detail-status");
  if (head) head.replaceChildren(badge(v.status));
}

async function loadDetail(videoId) {
  if (state.loading) {
    scheduleLiveLoad(); // one load at a time; try again shortly
    return;
  }
  state.loading = true;
  try {
    await loadDetailNow(videoId);
  } finally {
    state.loading = false;
  }
}

async function loadDetailNow(videoId) {
  state.lastLiveLoad = Date.now();
  let row;
  try {
    row = await apiJson(`/videos/${encodeURIComponent(videoId)}`);
  } catch (err) {
    if (videoId !== state.selected) return;
    const detail = document.getElementById("detail");
    const waiting = err.status === 404 ? "waiting for the video to start…" : `cannot load: ${err.message}`;
    detail.replaceChildren(h("div", { class: "placeholder" }, `${videoId}: ${waiting}`));
    if (err.status === 404) scheduleLiveLoad();
    return;
  }
  if (videoId !== state.selected) return;
  if (!state.doc || state.doc.video_id !== videoId) {
    state.doc = null;
    renderDetail(row, null); // status and progress now; the (provisional) reconstruction follows
  }
  try {
    state.doc = await apiJson(`/videos/${encodeURIComponent(videoId)}/reconstruction/live`);
  } catch (err) {
    console.warn("reconstruction", err);
  }
  if (videoId !== state.selected) return;
  renderDetail(row, state.doc);
  if (!TERMINAL.has(row.status) || (state.doc && state.doc.provisional)) scheduleLiveLoad();
}

function section(title, ...content) {
  return h("section", { class: "block" }, h("h3", {}, title), ...content);
}

// the document promotes some summaries to the top level (faces, camera, text_events, tracks); older
// documents keep them under `summaries`, so every reader looks in both places
const summaryOf = (doc, name) => (doc[name] && typeof doc[name] === "object" ? doc[name] : (doc.summaries || {})[name]) || null;
const textEvents = (doc) => doc.text_events || ((doc.summaries || {}).ocr_text || {}).events || [];
const objectTracks = (doc) => doc.tracks || ((doc.summaries || {}).objects || {}).tracks || [];

function descriptionOf(doc) {
  let d = doc.description;
  if (d && typeof d === "object") d = d.description || d.text;
  if (!d) d = ((doc.summaries || {}).captions || {}).description;
  return d ? String(d) : "";
}

function shotCaption(doc, shot) {
  const own = shot.caption && typeof shot.caption === "object" ? shot.caption.text : shot.caption;
  if (own) return String(own);
  const entries = ((doc.summaries || {}).captions || {}).shots || [];
  let best = "";
  let overlap = 0;
  for (const e of entries) {
    const o = Math.min(shot.end_s, e.end_s) - Math.max(shot.start_s, e.start_s);
    if (e.caption && o > overlap) [best, overlap] = [e.caption, o];
  }
  return best;
}

function shotColor(doc, shot) {
  // without a thumbnail, the shot's palette (color analyzer, middle second) stands in for it
  const mid = (shot.start_s + shot.end_s) / 2;
  const seg = (doc.segments || []).find((s) => s.start_s <= mid && mid < s.end_s);
  const palette = ((seg && seg.color && seg.color.palette) || []).filter((p) => /^#[0-9a-f]{6}$/i.test(p.hex));
  if (!palette.length) return "#8a93a6";
  if (palette.length === 1) return palette[0].hex;
  const stops = palette.map((p, i) => `${p.hex} ${(i / palette.length) * 100}% ${((i + 1) / palette.length) * 100}%`);
  return `linear-gradient(90deg, ${stops.join(", ")})`;
}

function thumbSrc(shot) {
  const t = shot.thumbnail;
  return typeof t === "string" && /^data:image\/(jpeg|png|webp);base64,[A-Za-z0-9+/=]+$/.test(t) ? t : null;
}

function thumbnail(doc, shot) {
  const src = thumbSrc(shot);
  return src
    ? h("img", { class: "thumb", src, alt: `shot ${shot.index}` })
    : h("div", { class: "thumb none", style: { background: shotColor(doc, shot) } }, h("span", {}, "palette"));
}

function lane(name, items, range) {
  const [t0, t1] = range;
  const span = Math.max(1e-6, t1 - t0);
  return h(
    "div",
    { class: "lane" },
    h("span", { class: "lane-name" }, name),
    h(
      "div",
      { class: "lane-track" },
      items.map((it) =>
        h(
          "div",
          {
            class: `item ${it.cls || ""}`,
            title: `${fmt(it.start)}–${fmt(it.end)} ${it.label || ""}`,
            style: {
              left: `${((it.start - t0) / span) * 100}%`,
              width: `${Math.max(0.4, ((it.end - it.start) / span) * 100)}%`,
              ...(it.bg ? { background: it.bg } : {}),
            },
          },
          h("span", {}, it.label || ""),
        ),
      ),
    ),
  );
}

function timeline(doc) {
  const t1 = Math.max(doc.duration_s || 0, 0.001);
  const range = [0, t1];
  const s = doc.summaries || {};
  const lanes = [];
  const shots = doc.shots || [];
  lanes.push(
    lane(
      "shots",
      shots.map((sh) => ({
        start: sh.start_s,
        end: sh.end_s,
        label: `#${sh.index} ${shotCaption(doc, sh)}`,
        // a validated data:image URI (base64: no quotes or parentheses) tiles the block; else the palette
        bg: thumbSrc(sh) ? `center / auto 100% repeat-x url("${thumbSrc(sh)}")` : shotColor(doc, sh),
        cls: "shot-item",
      })),
      range,
    ),
  );
  if ((doc.transitions || []).length) {
    lanes.push(lane("transitions", doc.transitions.map((t) => ({ start: t.start_s, end: t.end_s, label: t.kind, cls: "transition" })), range));
  }
  const segs = ((doc.transcript || {}).segments || []).filter((x) => String(x.text || "").trim());
  if (segs.length) {
    lanes.push(lane("speech", segs.map((x) => ({ start: x.start_s, end: x.end_s, label: x.text, cls: "speech" })), range));
  }
  const texts = textEvents(doc);
  if (texts.length) {
    lanes.push(lane("on-screen text", texts.map((x) => ({ start: x.start_s, end: x.end_s, label: x.text, cls: "text" })), range));
  }
  const faces = (summaryOf(doc, "faces") || {}).tracks || [];
  if (faces.length) {
    lanes.push(lane("faces", faces.map((x) => ({ start: x.start_s, end: x.end_s, label: `face ${x.id}`, cls: "face" })), range));
  }
  const objects = objectTracks(doc);
  if (objects.length) {
    lanes.push(lane("objects", objects.map((x) => ({ start: x.first_s, end: x.last_s, label: x.label, cls: "object" })), range));
  }
  const camera = (summaryOf(doc, "camera") || {}).spans || [];
  if (camera.length) {
    lanes.push(lane("camera", camera.map((x) => ({ start: x.start_s, end: x.end_s, label: [x.kind, x.direction].filter(Boolean).join(" "), cls: "camera" })), range));
  }
  const silences = (s.loudness || {}).silences || [];
  if (silences.length) {
    lanes.push(lane("silence", silences.map((x) => ({ start: x.start_s, end: x.end_s, label: "silence", cls: "silence" })), range));
  }
  const ticks = [];
  const step = t1 > 120 ? 30 : t1 > 30 ? 5 : t1 > 8 ? 2 : 1;
  for (let t = 0; t <= t1 + 1e-9; t += step) {
    ticks.push(h("span", { class: "tick", style: { left: `${(t / t1) * 100}%` } }, `${t}s`));
  }
  return h("div", { class: "timeline" }, h("div", { class: "ruler" }, h("span", { class: "lane-name" }), h("div", { class: "ruler-track" }, ticks)), lanes);
}

function shotsGrid(doc) {
  const shots = doc.shots || [];
  return h(
    "div",
    { class: "shots", id: "shots" },
    shots.map((sh) =>
      h(
        "figure",
        { class: "shot", dataset: { index: sh.index } },
        thumbnail(doc, sh),
        h(
          "figcaption",
          {},
          h("strong", {}, `#${sh.index}`),
          ` ${fmt(sh.start_s)}–${fmt(sh.end_s)}`,
          shotCaption(doc, sh) ? h("span", { class: "caption" }, shotCaption(doc, sh)) : null,
        ),
      ),
    ),
  );
}

function table(headers, rows) {
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c ?? ""))))),
  );
}

function transcriptBlock(doc) {
  const t = doc.transcript;
  if (!t) return null;
  const segs = (t.segments || []).filter((x) => String(x.text || "").trim());
  const speakers = new Set(segs.map((x) => x.speaker));
  const body = segs.length
    ? h(
        "ol",
        { class: "transcript" },
        segs.map((x) =>
          h(
            "li",
            {},
            h("span", { class: "time" }, fmt(x.start_s)),
            speakers.size > 1 ? h("span", { class: "speaker" }, x.speaker) : null,
            h("span", {}, x.text),
          ),
        ),
      )
    : h("p", { class: "muted" }, t.text || "no speech recognised");
  return section(`Transcript${t.language ? ` (${t.language})` : ""}`, body);
}

function detectionsBlock(doc) {
  const s = doc.summaries || {};
  const parts = [];
  if (s.objects || objectTracks(doc).length) {
    const counts = Object.entries((s.objects || {}).max_counts || {});
    parts.push(
      h("div", { class: "kv" }, h("strong", {}, "objects"), counts.length ? counts.map(([k, v]) => h("span", { class: "chip" }, `${k} × ${v}`)) : h("span", { class: "muted" }, "none")),
    );
  }
  const f = summaryOf(doc, "faces");
  if (f) {
    parts.push(
      h("div", { class: "kv" }, h("strong", {}, "faces"), `visible ${Math.round((f.face_share || 0) * 100)}% of the time, up to ${f.max_faces ?? 0} at once, ${f.track_count ?? 0} tracks, shot type ${f.shot_type || "–"}`),
    );
  }
  if (s.pose) {
    parts.push(h("div", { class: "kv" }, h("strong", {}, "people (pose)"), `up to ${s.pose.max_count ?? 0}, ${s.pose.track_count ?? 0} tracks`));
  }
  const camera = summaryOf(doc, "camera");
  if (camera) {
    const sec = Object.entries(camera.seconds || {}).map(([k, v]) => `${k} ${v}s`).join(", ");
    parts.push(h("div", { class: "kv" }, h("strong", {}, "camera"), `mostly ${camera.dominant || "–"}${sec ? ` (${sec})` : ""}`));
  }
  if (s.loudness) {
    const spans = (s.loudness.silences || []).map((x) => `${fmt(x.start_s)}–${fmt(x.end_s)}`).join(", ");
    parts.push(h("div", { class: "kv" }, h("strong", {}, "audio"), `mean ${s.loudness.mean_rms_dbfs ?? "–"} dBFS, peak ${s.loudness.max_peak_dbfs ?? "–"} dBFS; silence ${spans || "none"}`));
  }
  if (s.safety) {
    parts.push(h("div", { class: "kv" }, h("strong", {}, "safety"), s.safety.explicit ? `flagged (${(s.safety.flagged_spans || []).length} spans)` : "nothing flagged"));
  }
  return parts.length ? section("Detections and signals", ...parts) : null;
}

function aboutBlock(doc) {
  const a = doc.about;
  if (!a || typeof a !== "object") return null;
  const chips = (label, values) =>
    values.length ? h("div", { class: "kv" }, h("strong", {}, label), values.map((v) => h("span", { class: "chip" }, v))) : null;
  const parts = [
    chips("topics", (a.topics || []).map((t) => t.label)),
    chips("keywords", (a.keywords || []).map((k) => k.text)),
    chips("hashtags", a.hashtags || []),
    chips("mentions", a.mentions || []),
    chips("links", a.links || []),
  ].filter(Boolean);
  const ctas = a.ctas || [];
  if (ctas.length) {
    parts.push(table(["from", "to", "call to action", "where", "text"], ctas.map((c) => [fmt(c.start_s), fmt(c.end_s), c.kind, c.source, c.text])));
  }
  return parts.length ? section("About", ...parts) : null;
}

function otherSummaries(doc) {
  const shown = new Set(["objects", "faces", "pose", "camera", "safety", "loudness", "ocr_text", "captions"]);
  const rest = Object.entries(doc.summaries || {}).filter(([k, v]) => !shown.has(k) && v && typeof v === "object");
  if (!rest.length) return null;
  return section(
    "Other analyses",
    rest.map(([name, value]) =>
      h(
        "details",
        {},
        h("summary", {}, name),
        h(
          "dl",
          {},
          Object.entries(value).flatMap(([k, v]) => [
            h("dt", {}, k),
            h("dd", {}, typeof v === "object" ? JSON.stringify(v).slice(0, 400) : String(v)),
          ]),
        ),
      ),
    ),
  );
}

function renderDetail(row, doc) {
  const detail = document.getElementById("detail");
  const status = row.status;
  const final = TERMINAL.has(status) && doc && !doc.provisional;
  detail.dataset.videoId = row.video_id;
  detail.dataset.status = final ? status : "processing";
  detail.dataset.provisional = doc && doc.provisional ? "true" : "false";
  const title = (row.metadata || {}).filename || basename(row.uri) || row.video_id;
  const id = row.video_id;
  const children = [
    h(
      "header",
      { class: "detail-head" },
      h("div", {}, h("h2", {}, title), h("div", { class: "muted small" }, id)),
      h("div", { id: "detail-status" }, badge(status)),
      h(
        "div",
        { class: "downloads" },
        ["json", "vtt", "md"].map((kind) =>
          h("button", { type: "button", disabled: !final, onclick: () => download(id, kind), class: `dl-${kind}` },
            { json: "JSON", vtt: "WebVTT", md: "Markdown" }[kind]),
        ),
      ),
    ),
    h("div", { id: "detail-progress" }, TERMINAL.has(status) ? "" : progressBars(row.progress)),
  ];
  if (row.error) children.push(h("p", { class: "error" }, row.error));
  if (doc) {
    const description = descriptionOf(doc);
    if (description) {
      const by = doc.description && typeof doc.description === "object" && doc.description.model;
      children.push(
        h("blockquote", { class: "description" }, description,
          by ? h("span", { class: "by" }, `${by} (${doc.description.provenance})`) : null),
      );
    }
    const m = doc.media || {};
    children.push(
      h(
        "div",
        { class: "facts" },
        h("span", {}, `${(doc.duration_s || 0).toFixed(2)} s`),
        m.width ? h("span", {}, `${m.width}×${m.height}`) : null,
        m.avg_fps ? h("span", {}, `${m.avg_fps.toFixed(2)} fps`) : null,
        h("span", {}, `video ${m.video_codec || "–"} · audio ${m.audio_codec || "–"}`),
        h("span", {}, `${(doc.shots || []).length} shots`),
        doc.provisional ? h("span", { class: "chip warn" }, "provisional: still processing") : null,
      ),
    );
    if ((doc.shots || []).length) children.push(section("Timeline", timeline(doc)), section("Shots", shotsGrid(doc)));
    const transcript = transcriptBlock(doc);
    if (transcript) children.push(transcript);
    const texts = textEvents(doc);
    if (texts.length) {
      children.push(section("On-screen text", table(["from", "to", "text"], texts.map((e) => [fmt(e.start_s), fmt(e.end_s), e.text]))));
    }
    const about = aboutBlock(doc);
    if (about) children.push(about);
    const detections = detectionsBlock(doc);
    if (detections) children.push(detections);
    const other = otherSummaries(doc);
    if (other) children.push(other);
    const analyzers = Object.entries(doc.analyzers || {}).sort(([a], [b]) => a.localeCompare(b));
    if (analyzers.length) {
      children.push(
        section(
          "Analyzers",
          h("div", { id: "analyzers" }, table(
            ["analyzer", "state", "received", "errors", "model", "provenance"],
            analyzers.map(([name, a]) => [
              name,
              // a provisional document judges unfinished analyzers as if the video were done
              doc.provisional && !["complete", "not_applicable"].includes(a.state)
                ? h("span", { class: "state running" }, "in progress")
                : h("span", { class: `state ${a.state}` }, a.state),
              `${a.received}/${a.expected}`,
              String(a.errors),
              a.model,
              a.provenance,
            ]),
          )),
        ),
      );
    }
    if ((doc.absent_streams || []).length) {
      const absent = `no ${doc.absent_streams.join(" or ")} stream in this file: its analyzers are not applicable`;
      children.push(section("Streams", h("p", {}, absent)));
    }
    if ((doc.warnings || []).length) {
      children.push(section("Warnings", h("ul", { class: "warnings" }, doc.warnings.map((w) => h("li", {}, w)))));
    }
  }
  detail.replaceChildren(...children);
}

// --- start ----------------------------------------------------------------------------------------------

function selectFromHash() {
  const match = location.hash.match(/^#video=(.+)$/);
  if (match) select(decodeURIComponent(match[1]));
}

function start() {
  takeTokenFromUrl();
  document.getElementById("upload-form").addEventListener("submit", upload);
  document.getElementById("uri-form").addEventListener("submit", submitUri);
  document.getElementById("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token-input").value.trim());
    document.getElementById("token-form").hidden = true;
    openAllStream();
    refreshStats();
    refreshVideos();
    if (state.selected) select(state.selected);
  });
  window.addEventListener("hashchange", selectFromHash);
  openAllStream();
  refreshStats();
  refreshVideos();
  selectFromHash();
  setInterval(refreshStats, 5000);
  setInterval(refreshVideos, 15000);
}

document.addEventListener("DOMContentLoaded", start);
