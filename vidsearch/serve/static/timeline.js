// vidsearch serve: the player's one timeline (heat strip of the query's score over the whole video,
// a mark per matching span) and the merging of "every moment" results into one card per video.
// Plain JavaScript, loaded before app.js; app.js calls these functions.
"use strict";

// The query's score over the whole video, drawn on the timeline's canvas; the matching spans
// marked as buttons (click: play from there). `search` is the page's current search.
async function loadHeat(r, search, minScore) {
  const timeline = document.getElementById("timeline");
  clearHeat();
  if (!search || r.video.live || !(search.query || search.similar)) return;
  const qs = new URLSearchParams(search.similar ? { similar: search.similar } : { q: search.query });
  if (minScore != null) qs.set("min_score", minScore);
  let data;
  try {
    data = await api(`/api/v1/videos/${encodeURIComponent(r.video.id)}/scores?${qs}`);
  } catch (_) {
    return; // no strip: the player still plays, the match's own span is marked
  }
  if (state.current !== r) return; // another moment opened meanwhile
  timeline.dataset.heat = "ready";
  heat.data = data;
  drawHeat();
  const d = r.video.duration || data.duration || r.end || 1;
  for (const s of data.spans) {
    const mark = document.createElement("button");
    mark.type = "button";
    mark.className = "match";
    mark.style.left = `${(100 * s.start) / d}%`;
    mark.style.width = `${Math.max(0.8, (100 * (s.end - s.start)) / d)}%`;
    mark.setAttribute("aria-label", `Play the matching span ${fmt(s.start)}–${fmt(s.end)}`);
    mark.title = `Matches ${fmt(s.start)}–${fmt(s.end)} (score ${s.score.toFixed(3)}); click to play from there`;
    mark.dataset.start = s.start;
    mark.addEventListener("click", (e) => {
      e.stopPropagation(); // the timeline's own click would seek to the pointer instead
      const video = document.getElementById("video");
      if (!r.video.playable) return;
      video.currentTime = s.start;
      video.play().catch(() => {});
    });
    timeline.append(mark);
  }
}

const heat = { data: null };

function clearHeat() {
  const timeline = document.getElementById("timeline");
  timeline.querySelectorAll(".match").forEach((el) => el.remove());
  delete timeline.dataset.heat;
  heat.data = null;
  const canvas = document.getElementById("heat");
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
}

// Each pixel column: the mean score of the windows covering its time, from cold (the video's
// lowest window) to hot (its highest).
function drawHeat() {
  const canvas = document.getElementById("heat"), data = heat.data;
  if (!data) return; // nothing loaded (also when the observer first fires, before app.js has run)
  const r = state.current;
  if (!r) return;
  const width = Math.max(1, Math.round(canvas.clientWidth * (window.devicePixelRatio || 1)));
  canvas.width = width;
  canvas.height = 1;
  const d = r.video.duration || data.duration || 1;
  const sum = new Float32Array(width), count = new Uint16Array(width);
  for (const w of data.windows) {
    const x0 = Math.max(0, Math.floor((w.start / d) * width)), x1 = Math.min(width, Math.ceil((w.end / d) * width));
    for (let x = x0; x < x1; x++) { sum[x] += w.score; count[x]++; }
  }
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(width, 1), range = data.high - data.low;
  for (let x = 0; x < width; x++) {
    if (!count[x]) continue;
    const v = range > 1e-9 ? (sum[x] / count[x] - data.low) / range : 1;
    const [red, green, blue] = heatColour(v);
    img.data.set([red, green, blue, Math.round(255 * (0.35 + 0.65 * v))], 4 * x);
  }
  ctx.putImageData(img, 0, 0);
}

// Cold blue-grey to hot orange.
function heatColour(v) {
  const cold = [120, 140, 170], hot = [249, 115, 22];
  return cold.map((c, i) => Math.round(c + v * (hot[i] - c)));
}

new ResizeObserver(() => drawHeat()).observe(document.getElementById("heat"));

// ---------------------------------------------------------------- "every moment": one card per video
// Moments of one video whose spans overlap or touch are one span; a video's spans are listed on
// its card, best-ranked moment first in the ranking, spans shown in time order.

const TOUCH = 0.05; // s: spans this close count as adjacent

function mergeSpans(spans) {
  const sorted = [...spans].sort((a, b) => a.start - b.start);
  const out = [];
  for (const s of sorted) {
    const last = out[out.length - 1];
    if (last && s.start <= last.end + TOUCH) {
      last.end = Math.max(last.end, s.end);
      if (s.score > last.score) { last.score = s.score; last.match = s.match; last.moment_id = s.moment_id; }
    } else {
      out.push({ start: s.start, end: s.end, score: s.score, match: s.match, moment_id: s.moment_id });
    }
  }
  return out;
}

// Add a page of moments to the per-video entries (`byVideo`: video id -> entry); returns the new entries.
function mergeMoments(results, byVideo) {
  const added = [];
  for (const m of results) {
    const span = { start: m.start, end: m.end, score: m.score, match: m.match, moment_id: m.moment_id };
    const entry = byVideo.get(m.video.id);
    if (entry) {
      entry.raw.push(span);
      entry.spans = mergeSpans(entry.raw);
      entry.changed = true;
    } else {
      const fresh = { ...m, raw: [span], spans: [span] };
      byVideo.set(m.video.id, fresh);
      added.push(fresh);
    }
  }
  return added;
}
