// reelscope dashboard, the player: the video (served by the API with range requests), lanes of what was
// found in it, click-to-seek, a cursor that follows playback, and boxes drawn over the frame at the
// current time. Uses h(), fmt(), token(), summaryOf(), textEvents(), objectTracks() from app.js.
"use strict";

const player = { video: null, overlay: null, cursor: null, doc: null, seekTo: null, raf: 0 };
window.reelscopePlayer = player;
window.addEventListener("resize", () => fitOverlay());

function mediaUrl(videoId) {
  const path = `/videos/${encodeURIComponent(videoId)}/media`;
  return token() ? `${path}?token=${encodeURIComponent(token())}` : path;
}

function seek(t) {
  const v = player.video;
  if (!v) {
    player.seekTo = t;
    return;
  }
  if (v.readyState >= 1) v.currentTime = t;
  else player.seekTo = t;
  moveCursor();
}

const pct = (t, span) => `${Math.max(0, Math.min(100, (t / span) * 100))}%`;
const confText = (c) => (typeof c === "number" && isFinite(c) ? ` · confidence ${(c * 100).toFixed(0)}%` : "");

function laneOf(name, items, span) {
  return h(
    "div",
    { class: "lane", dataset: { lane: name } },
    h("span", { class: "lane-name" }, name),
    h(
      "div",
      { class: "lane-track" },
      items.map((it) =>
        h(
          "button",
          {
            type: "button",
            class: `item ${it.cls || ""}`,
            title: `${fmt(it.start)}–${fmt(it.end)} ${it.label || ""}${confText(it.conf)}`,
            dataset: { start: it.start, conf: typeof it.conf === "number" ? it.conf : "" },
            style: {
              left: pct(it.start, span),
              width: `${Math.max(0.4, ((it.end - it.start) / span) * 100)}%`,
              ...(it.bg ? { background: it.bg } : {}),
            },
            onclick: () => seek(it.start),
          },
          h("span", {}, it.label || ""),
        ),
      ),
    ),
  );
}

function speechLanes(doc) {
  // one lane per speaker or stereo channel, so two voices never overlap in one lane
  const t = doc.transcript || {};
  const words = (t.words || []).filter((w) => String(w.word || "").trim());
  const pieces = [];
  if (words.length) {
    let cur = null;
    for (const w of [...words].sort((a, b) => a.start_s - b.start_s)) {
      const who = w.speaker || "speech";
      if (cur && cur.who === who && w.start_s - cur.end <= 1.0 && cur.label.length < 80) {
        cur.end = w.end_s;
        cur.label += ` ${w.word}`;
        cur.confs.push(w.probability);
      } else {
        cur = { who, start: w.start_s, end: w.end_s, label: String(w.word), confs: [w.probability], cls: "speech" };
        pieces.push(cur);
      }
    }
  } else {
    for (const s of (t.segments || []).filter((x) => String(x.text || "").trim())) {
      pieces.push({ who: s.speaker || "speech", start: s.start_s, end: s.end_s, label: s.text, confs: [], cls: "speech" });
    }
  }
  const bySpeaker = new Map();
  for (const p of pieces) {
    const known = p.confs.filter((c) => typeof c === "number");
    p.conf = known.length ? known.reduce((a, b) => a + b, 0) / known.length : null;
    if (!bySpeaker.has(p.who)) bySpeaker.set(p.who, []);
    bySpeaker.get(p.who).push(p);
  }
  return [...bySpeaker.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([who, items]) => [`speech ${who}`.replace("speech speech", "speech"), items]);
}

function lanesOf(doc) {
  const s = doc.summaries || {};
  const lanes = [
    ["shots", (doc.shots || []).map((sh) => ({
      start: sh.start_s, end: sh.end_s, label: `#${sh.index} ${shotCaption(doc, sh)}`, cls: "shot-item",
      bg: thumbSrc(sh) ? `center / auto 100% repeat-x url("${thumbSrc(sh)}")` : shotColor(doc, sh),
    }))],
    ["transitions", (doc.transitions || []).map((x) => ({ start: x.start_s, end: x.end_s, label: x.kind, cls: "transition" }))],
    ...speechLanes(doc),
    ["who speaks", speakingItems(doc.speaking || {})],
    ["on-screen text", textEvents(doc).map((x) => ({ start: x.start_s, end: x.end_s, label: x.text, conf: x.conf, cls: "text" }))],
    ["faces", ((summaryOf(doc, "faces") || {}).tracks || []).map((x) => ({ start: x.start_s, end: x.end_s, label: `face ${x.id}`, conf: x.conf, cls: "face" }))],
    ["objects", objectTracks(doc).map((x) => ({ start: x.first_s, end: x.last_s, label: x.label, conf: x.conf, cls: "object" }))],
    ["hands", handItems(summaryOf(doc, "hands") || {})],
    ["segmentation", segmentationItems(doc)],
    ["sound events", ((s.sound_events || {}).events || []).map((x) => ({ start: x.start_s, end: x.end_s, label: x.label, conf: x.score, cls: "sound" }))],
    ["camera", ((summaryOf(doc, "camera") || {}).spans || []).map((x) => ({ start: x.start_s, end: x.end_s, label: [x.kind, x.direction].filter(Boolean).join(" "), cls: "camera" }))],
    ["loudness", loudnessItems(doc)],
  ];
  return lanes.filter(([name, items]) => name === "shots" || items.length);
}

function speakingItems(speaking) {
  // per speech turn, where its voice comes from: a face track whose mouth moves, off-screen, or unknown
  return (speaking.turns || []).map((t) => ({
    start: t.start_s, end: t.end_s, conf: t.confidence, cls: `speaking ${t.where}`,
    label: `${t.speaker ? `${t.speaker}: ` : ""}${t.where === "on_screen" ? `face ${t.track_id}` : t.where.replace("_", "-")}`,
  }));
}

function segmentationItems(doc) {
  // per segment, the person's share of the frame as a bar (opacity follows it), green/blue screen named;
  // a background change is a marker at its time
  const out = [];
  for (const seg of doc.segments || []) {
    const m = seg.segmentation;
    if (!m || typeof m.person_share !== "number") continue;
    const keyed = (m.green_screen_share || 0) >= 0.5 ? " green screen" : (m.blue_screen_share || 0) >= 0.5 ? " blue screen" : "";
    out.push({ start: seg.start_s, end: seg.end_s, label: `${(m.person_share * 100).toFixed(0)}%${keyed}`, cls: `person-share${keyed ? " keyed" : ""}`, bg: keyed ? null : `rgba(200, 90, 60, ${0.1 + 0.9 * Math.min(1, m.person_share)})` });
  }
  for (const c of (summaryOf(doc, "segmentation") || {}).background_changes || []) {
    out.push({ start: c.at_s, end: c.at_s, label: "background change", cls: "background-change" });
  }
  return out;
}

function handItems(hands) {
  // gesture spans (pointing, open palm, thumbs up, wave) where there are any, else each hand's track
  const gestures = (hands.gestures || []).map((g) => ({ start: g.start_s, end: g.end_s, label: `${g.kind} (hand ${g.track_id})`, cls: "hand" }));
  if (gestures.length) return gestures;
  return (hands.tracks || []).map((t) => ({ start: t.first_s, end: t.last_s, label: `${t.side || ""} hand ${t.track_id}`.trim(), cls: "hand" }));
}

function loudnessItems(doc) {
  // per segment, its loudness as a bar whose opacity follows the level; silences named
  const out = [];
  for (const seg of doc.segments || []) {
    const l = seg.loudness;
    if (!l || typeof l.rms_dbfs !== "number") continue;
    const level = Math.max(0, Math.min(1, (l.rms_dbfs + 60) / 60));
    out.push({ start: seg.start_s, end: seg.end_s, label: `${l.rms_dbfs.toFixed(0)} dB`, cls: "loud", bg: `rgba(60, 110, 200, ${0.15 + 0.85 * level})` });
  }
  for (const x of ((doc.summaries || {}).loudness || {}).silences || []) {
    out.push({ start: x.start_s, end: x.end_s, label: "silence", cls: "silence" });
  }
  return out;
}

function timeline(doc) {
  const span = Math.max(doc.duration_s || 0, 0.001);
  const ticks = [];
  const step = span > 120 ? 30 : span > 30 ? 5 : span > 8 ? 2 : 1;
  for (let t = 0; t <= span + 1e-9; t += step) ticks.push(h("span", { class: "tick", style: { left: pct(t, span) } }, `${t}s`));
  player.cursor = h("div", { class: "cursor", id: "cursor" });
  return h(
    "div",
    { class: "timeline", dataset: { span } },
    h("div", { class: "ruler" }, h("span", { class: "lane-name" }), h("div", { class: "ruler-track" }, ticks)),
    lanesOf(doc).map(([name, items]) => laneOf(name, items, span)),
    h("div", { class: "cursor-layer" }, h("span", { class: "lane-name" }), h("div", { class: "cursor-track" }, player.cursor)),
  );
}

function boxesAt(doc, t) {
  // [x0, y0, x1, y1] normalised boxes visible at t: on-screen text, face tracks, per-segment detections
  const out = [];
  for (const e of textEvents(doc)) {
    if (Array.isArray(e.box) && e.box.length === 4 && e.start_s <= t && t <= e.end_s) out.push({ box: e.box, label: e.text, cls: "text", conf: e.conf });
  }
  const seg = (doc.segments || []).find((s) => s.start_s <= t && t < s.end_s);
  const isBox = (b) => Array.isArray(b) && b.length === 4;
  let segmentFaces = 0;
  for (const value of Object.values(seg || {})) {
    if (!value || typeof value !== "object") continue;
    for (const d of Array.isArray(value.detections) ? value.detections : []) {
      if (isBox(d.box)) out.push({ box: d.box, label: d.label, cls: "object", conf: d.conf });
    }
    for (const f of Array.isArray(value.faces) ? value.faces : []) {
      if (!isBox(f.box)) continue;
      out.push({ box: f.box, label: "face", cls: "face", conf: f.conf });
      segmentFaces += 1;
    }
  }
  // without per-segment face boxes, a face track's mean box stands in while the track lasts
  for (const f of segmentFaces ? [] : (summaryOf(doc, "faces") || {}).tracks || []) {
    if (isBox(f.box) && f.start_s <= t && t <= f.end_s) out.push({ box: f.box, label: `face ${f.id}`, cls: "face", conf: f.conf });
  }
  return out;
}

function drawBoxes() {
  const { video, overlay, doc } = player;
  if (!video || !overlay || !doc) return;
  const found = boxesAt(doc, video.currentTime);
  overlay.replaceChildren(
    ...found.map((b) =>
      h("div", {
        class: `box ${b.cls}`,
        title: `${b.label || ""}${confText(b.conf)}`,
        style: { left: `${b.box[0] * 100}%`, top: `${b.box[1] * 100}%`, width: `${(b.box[2] - b.box[0]) * 100}%`, height: `${(b.box[3] - b.box[1]) * 100}%` },
      }, h("span", {}, `${b.label || ""}${typeof b.conf === "number" ? ` ${(b.conf * 100).toFixed(0)}%` : ""}`)),
    ),
  );
}

function fitOverlay() {
  // the overlay covers the picture itself, not the letterbox around it
  const { video, overlay } = player;
  if (!video || !overlay || !video.videoWidth) return;
  const scale = Math.min(video.clientWidth / video.videoWidth, video.clientHeight / video.videoHeight);
  const w = video.videoWidth * scale;
  const hgt = video.videoHeight * scale;
  Object.assign(overlay.style, { width: `${w}px`, height: `${hgt}px`, left: `${video.offsetLeft + (video.clientWidth - w) / 2}px`, top: `${video.offsetTop + (video.clientHeight - hgt) / 2}px` });
}

function moveCursor() {
  const { video, cursor, doc } = player;
  if (!video || !cursor || !doc) return;
  cursor.style.left = pct(video.currentTime, Math.max(doc.duration_s || 0, 0.001));
  document.getElementById("player-time").textContent = fmt(video.currentTime);
}

function tick() {
  moveCursor();
  drawBoxes();
  if (player.video && !player.video.paused) player.raf = requestAnimationFrame(tick);
}

function playerBlock(row, doc) {
  // the <video> survives re-renders of the same video, so a provisional refresh does not restart it
  const same = player.video && player.video.dataset.videoId === row.video_id;
  if (!same) {
    player.video = h("video", { id: "player", controls: true, preload: "metadata", playsinline: true, dataset: { videoId: row.video_id } });
    player.video.src = mediaUrl(row.video_id);
    player.overlay = h("div", { class: "overlay", id: "overlay" });
    for (const name of ["timeupdate", "seeked", "loadeddata"]) player.video.addEventListener(name, () => { moveCursor(); drawBoxes(); });
    player.video.addEventListener("play", () => { cancelAnimationFrame(player.raf); player.raf = requestAnimationFrame(tick); });
    player.video.addEventListener("loadedmetadata", () => {
      fitOverlay();
      if (player.seekTo !== null) {
        player.video.currentTime = player.seekTo;
        player.seekTo = null;
      }
    });
  }
  player.doc = doc;
  const stage = h("div", { class: "stage" }, player.video, player.overlay);
  requestAnimationFrame(() => { fitOverlay(); moveCursor(); drawBoxes(); });
  return h("div", { class: "player-block" }, stage, h("div", { class: "muted small" }, "at ", h("span", { id: "player-time" }, "0:00.0")));
}
