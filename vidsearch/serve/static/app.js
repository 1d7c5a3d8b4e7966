// vidsearch serve: the search page. Plain JavaScript, no build step, no third-party code.
"use strict";

const PAGE = 24;
const STRIP_TILES = 8; // ServeConfig.strip_frames
const $ = (id) => document.getElementById(id);
const PLACEHOLDER = $("q").placeholder; // the search box's hint while no "more like this" is shown
const state = { search: null, cursor: null, results: [], selected: -1, loading: false, current: null, videos: null, byVideo: new Map() };
// What the page says when the server does not answer (stopped, or the network is down).
const OFFLINE = "The vidsearch server does not answer (is it still running?). The results shown are kept; try again once it is back.";

function fmt(t) {
  if (t == null || !isFinite(t)) return "-";
  const m = Math.floor(t / 60), s = t - 60 * m;
  return `${m}:${s.toFixed(1).padStart(4, "0")}`;
}

function setStatus(text, note = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("note", note);
}

async function api(path, options = {}) {
  let resp;
  try {
    resp = await fetch(path, { credentials: "same-origin", ...options });
  } catch (err) {
    throw new Error(OFFLINE); // fetch rejects only when no answer came at all
  }
  let body = null;
  try { body = await resp.json(); } catch (_) { /* not JSON */ }
  if (!resp.ok) throw new Error((body && body.error) || `HTTP ${resp.status}`);
  return body;
}

// ---------------------------------------------------------------- filters and the URL

function readFilters() {
  const num = (id) => { const v = $(id).value.trim(); return v === "" ? null : Number(v); };
  const str = (id) => { const v = $(id).value.trim(); return v === "" ? null : v; };
  return {
    min_score: num("f-min-score"), label: str("f-label"), min_duration: num("f-min-duration"),
    max_duration: num("f-max-duration"), path_prefix: str("f-path"), group_by: $("f-group").value,
    rerank: str("f-rerank"),
    mode: str("f-mode"),
    sort: $("f-sort").value,
    date_from: str("f-date-from"), date_to: str("f-date-to"),
  };
}

// The request's form of the filters: the date inputs' days become the local day's first and last instants.
function requestFilters(f) {
  const out = { ...f };
  if (f.date_from) out.date_from = new Date(`${f.date_from}T00:00:00`).toISOString();
  if (f.date_to) out.date_to = new Date(`${f.date_to}T23:59:59.999`).toISOString();
  if (out.sort === "score") delete out.sort;
  return out;
}

const DEFAULTS = { group_by: "video", sort: "score" }; // left out of the URL
const URL_KEYS = { min_score: "f-min-score", label: "f-label", min_duration: "f-min-duration", max_duration: "f-max-duration", path_prefix: "f-path", group_by: "f-group", rerank: "f-rerank", mode: "f-mode", sort: "f-sort", date_from: "f-date-from", date_to: "f-date-to" };

function writeUrl(push) {
  const params = new URLSearchParams();
  const s = state.search;
  if (s && s.query) params.set("q", s.query);
  if (s && s.similar) params.set("similar", s.similar);
  for (const [key, value] of Object.entries(readFilters())) {
    if (value != null && DEFAULTS[key] !== value) params.set(key, value);
  }
  const url = `${location.pathname}${params.toString() ? "?" + params : ""}${location.hash}`;
  (push ? history.pushState : history.replaceState).call(history, null, "", url);
}

function readUrl() {
  const params = new URLSearchParams(location.search);
  for (const [key, id] of Object.entries(URL_KEYS)) if (params.has(key)) $(id).value = params.get(key);
  if ([...Object.keys(URL_KEYS)].some((k) => !(k in DEFAULTS) && params.has(k))) showFilters(true);
  $("q").value = params.get("q") || "";
  return { query: params.get("q"), similar: params.get("similar") };
}

function showFilters(open) {
  $("filters").hidden = !open;
  $("toggle-filters").setAttribute("aria-expanded", String(open));
}

// ---------------------------------------------------------------- searching

async function runSearch(search, { push = true } = {}) {
  state.search = search;
  if (typeof closeLibrary === "function") closeLibrary(true, false); // library.js: a search shows results
  if (search.similar && !search.label) search.label = await momentLabel(search.similar);
  // the search box says what "more like this" searches from instead of going blank
  $("q").placeholder = search.similar || search.file ? `More like ${search.label || "the chosen moment"}; type to search by words` : PLACEHOLDER;
  state.cursor = null;
  writeUrl(push);
  await loadMore(true);
}

// The next page of the current search; `fresh`: its first page, which replaces the results shown
// only once it has arrived (a failed search keeps them).
async function loadMore(fresh = false) {
  if ((state.loading && !fresh) || !state.search) return;
  state.loading = true;
  $("more").hidden = true;
  setStatus("Searching…");
  const f = requestFilters(readFilters());
  const search = state.search;
  const ticket = fresh ? (state.ticket = (state.ticket || 0) + 1) : state.ticket; // filters re-run the same search
  try {
    let page;
    if (state.search.file) {
      page = await api("/api/v1/search", { method: "POST", body: exampleForm(state.search.file, f) }); // example.js
    } else if (state.search.similar) {
      // the same filters as a typed search: folder, label and length narrow "more like this" too
      const qs = new URLSearchParams({ k: PAGE });
      for (const [k, v] of Object.entries(f)) if (v != null && k !== "rerank") qs.set(k, v); // re-ranking: text only
      if (state.cursor) qs.set("cursor", state.cursor);
      page = await api(`/api/v1/moments/${encodeURIComponent(state.search.similar)}/similar?${qs}`);
    } else {
      const body = { query: state.search.query, k: PAGE, cursor: state.cursor };
      for (const [k, v] of Object.entries(f)) if (v != null) body[k] = v;
      if (body.group_by === "moment") delete body.rerank; // re-ranking orders videos, not every moment
      page = await api("/api/v1/search", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    }
    if (state.search !== search || state.ticket !== ticket) return; // a newer search started meanwhile (answers may come out of order)
    if (fresh) {
      state.results = [];
      state.selected = -1;
      state.byVideo = new Map();
      $("results").replaceChildren();
    }
    showPage(page.results, f.group_by === "moment");
    state.cursor = page.next_cursor;
    $("more").hidden = !state.cursor;
    const source = state.search.similar || state.search.file ? ` like ${state.search.label || "the chosen moment"}` : "";
    // a library whose videos were all removed still has its space (page.model): it is empty all the same
    if (!state.results.length) setStatus(page.model && state.videos !== 0 ? `No moments${source} match. Try other words or loosen the filters.` : "The library is empty: index a folder first (vidsearch index ~/Videos).", true);
    else setStatus(`${state.results.length} ${f.group_by === "moment" ? "videos with matching moments" : "videos"}${source}${state.cursor ? " so far" : ""}`);
    if (state.selected < 0 && state.results.length) select(0, false);
  } catch (err) {
    setStatus(err.message, true);
    if (fresh && state.results.length) $("more").hidden = !state.cursor;
  } finally {
    state.loading = false;
  }
}

// Append a page of results: one card per result, or (every moment) one card per video whose
// moments are merged into spans, later pages adding to the cards already shown.
function showPage(results, byMoment) {
  if (!byMoment) {
    const first = state.results.length;
    state.results.push(...results);
    results.forEach((r, i) => $("results").append(card(r, first + i)));
    return;
  }
  const added = mergeMoments(results, state.byVideo);
  for (const entry of state.byVideo.values()) {
    if (!entry.changed) continue;
    entry.changed = false;
    const old = $("results").children[entry.index];
    if (old) old.querySelector(".spans").replaceWith(spanList(entry));
  }
  for (const entry of added) {
    entry.index = state.results.length;
    state.results.push(entry);
    $("results").append(card(entry, entry.index));
  }
}

// An "every moment" card's spans: each a button that plays it.
function spanList(entry) {
  const list = document.createElement("ul");
  list.className = "spans";
  list.setAttribute("aria-label", `${entry.spans.length} matching ${entry.spans.length === 1 ? "span" : "spans"}`);
  for (const s of entry.spans) {
    const li = document.createElement("li"), b = document.createElement("button");
    b.type = "button";
    b.textContent = `${when(entry, s.start)}–${when(entry, s.end)}`;
    b.title = `Play ${b.textContent} (${matchText(s)})`;
    b.addEventListener("click", (e) => {
      e.stopPropagation();
      select(entry.index, false);
      // the merged span is the moment (its id, as the server writes ids, names it for a clip or "more like this")
      const mid = `${entry.video.id}-${Math.round(s.start * 1000)}-${Math.round(s.end * 1000)}`;
      const media = entry.clip_start != null ? streamClip(entry, mid, s) : { play_url: entry.play_url && entry.play_url.replace(/#t=.*$/, `#t=${s.start.toFixed(3)},${s.end.toFixed(3)}`) };
      openPlayer({ ...entry, start: s.start, end: s.end, score: s.score, match: s.match, moment_id: mid, ...media });
    });
    li.append(b);
    list.append(li);
  }
  return list;
}

// A time of a moment as people read it: an offset into a file, a wall-clock time for a stream
// (in the player a stream's times count from its clip's start: `offset` adds that back).
function when(r, t) {
  return r.video && r.video.live ? new Date((t + (r.offset || 0)) * 1000).toLocaleTimeString() : fmt(t);
}

const STREAM_CONTEXT = 5; // s of recording either side of a stream's span (the server's STREAM_CONTEXT_S)

// A stream span's clip of the recording, as the server writes one: the span with context, not
// before the kept recording's start; the fragment counts from the clip's first frame.
function streamClip(entry, mid, s) {
  const lo = Math.max(s.start - STREAM_CONTEXT, entry.video.recorded_from ?? -Infinity), hi = s.end + STREAM_CONTEXT;
  const at = `#t=${Math.max(0, s.start - lo).toFixed(3)},${(s.end - lo).toFixed(3)}`;
  return { clip_start: lo, play_url: `/api/v1/moments/${encodeURIComponent(mid)}/clip.mp4?start=${lo.toFixed(3)}&end=${hi.toFixed(3)}${at}` };
}

// A stream's moment as the player shows it: a clip of the recording whose times count from the
// clip's first frame (clip_start, UTC seconds), its length the clip's.
function inClip(r) {
  if (r.clip_start == null || r.offset != null || !r.play_url) return r;
  const c = r.clip_start, hi = Number(new URL(r.play_url, location.href).searchParams.get("end"));
  return { ...r, start: r.start - c, end: r.end - c, offset: c, video: { ...r.video, duration: hi - c } };
}

function matchText(r) {
  if (r.match == null || !isFinite(r.score)) return "";
  return `relative match ${Math.round(100 * r.match)}%: 100% is this search's best result, 0% its 25th; not a probability. Raw score ${r.score.toFixed(3)}`;
}

function card(r, index) {
  const li = document.createElement("li");
  li.className = "card";
  li.tabIndex = -1;
  li.dataset.index = index;
  li.dataset.video = r.video.id;
  const thumb = document.createElement("div");
  thumb.className = "thumb";
  let still;
  if (r.thumbnail_url) {
    still = document.createElement("img");
    still.src = r.thumbnail_url;
    still.alt = `${r.video.name} at ${when(r, (r.start + r.end) / 2)}`;
    still.loading = "lazy";
  } else { // a stream's moment has no stills: a neutral placeholder
    still = document.createElement("span");
    still.className = "no-still";
    still.textContent = r.video.live ? (r.play_url ? "Stream recording" : "Stream (not recorded)") : "No picture";
  }
  const scrub = document.createElement("div");
  scrub.className = "scrub";
  const score = document.createElement("span");
  score.className = "matchbar";
  score.setAttribute("role", "img");
  score.setAttribute("aria-label", `Match ${Math.round(100 * (r.match ?? 1))}%`);
  score.title = matchText(r);
  const fill = document.createElement("i");
  fill.style.width = `${Math.max(4, 100 * (r.match ?? 1))}%`;
  score.append(fill);
  const bar = document.createElement("div");
  bar.className = "bar-span";
  const mark = document.createElement("i");
  const shown = inClip(r), d = shown.video.duration || shown.end || 1; // a stream's span: in its clip
  mark.style.left = `${(100 * shown.start) / d}%`;
  mark.style.width = `${Math.max(1, (100 * (shown.end - shown.start)) / d)}%`;
  bar.append(mark);
  thumb.append(still, scrub, score, bar);
  const meta = document.createElement("div");
  meta.className = "meta";
  const name = document.createElement("a"); // Tab reaches each card here; Enter plays
  name.className = "name";
  name.href = playerHash(r, r.start); // a link that opens the moment (new tab, copy link)
  name.textContent = r.video.name;
  name.title = r.video.name;
  name.setAttribute("aria-label", `Play ${r.video.name} from ${fmt(r.start)} (match ${fmt(r.start)} to ${fmt(r.end)})`);
  name.addEventListener("click", (e) => { e.preventDefault(); e.stopPropagation(); select(index, false); openPlayer(r); });
  li.addEventListener("focusin", () => select(index, false));
  const row = document.createElement("div");
  row.className = "row";
  const span = document.createElement("span");
  span.className = "when";
  // every moment: the spans listed below are the matches; this is the best-ranked one
  span.textContent = `${r.spans ? "best " : ""}${when(r, r.start)}–${when(r, r.end)}`;
  if (!r.video.playable) {
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = "stills only";
    badge.title = "The browser cannot play this file's codec; the page shows stills.";
    span.append(" ", badge);
  }
  const similar = document.createElement("button");
  similar.type = "button";
  similar.className = "ghost similar";
  similar.textContent = "More like this";
  similar.addEventListener("click", (e) => { e.stopPropagation(); moreLike(r); });
  if (r.why && r.why !== "seen") {
    const why = document.createElement("span");
    why.className = "why";
    why.textContent = r.why; // said, or both (seen and said)
    why.title = r.why === "both" ? "Found in the picture and in what is said" : "Found in what is said";
    span.append(" ", why);
  }
  row.append(span, similar);
  meta.append(name, row);
  if (r.date) {
    const date = document.createElement("time");
    date.className = "date";
    date.dateTime = r.date;
    date.textContent = new Date(r.date).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    date.title = r.video.live ? "When it happened (the stream's clock)" : "The file's modification time";
    meta.append(date);
  }
  if (r.spans) meta.append(spanList(r));
  if (r.said) meta.append(quote(r.said));
  li.append(thumb, meta);
  li.addEventListener("click", () => { select(index, false); openPlayer(r); });
  thumb.addEventListener("mouseenter", () => loadStrip(scrub, r), { once: true });
  thumb.addEventListener("mousemove", (e) => scrubTo(scrub, thumb, e));
  return li;
}

function loadStrip(scrub, r) {
  if (!r.strip_url) return;
  const img = new Image();
  img.onload = () => { scrub.style.backgroundImage = `url("${r.strip_url}")`; scrub.classList.add("ready"); };
  img.src = r.strip_url;
}

function scrubTo(scrub, thumb, e) {
  const box = thumb.getBoundingClientRect();
  const tile = Math.min(STRIP_TILES - 1, Math.max(0, Math.floor(((e.clientX - box.left) / box.width) * STRIP_TILES)));
  scrub.style.backgroundPosition = `${(100 * tile) / (STRIP_TILES - 1)}% 0`;
}

// The name and span of a moment id (a shared "more like this" link carries only the id).
async function momentLabel(mid) {
  const [id, start, end] = mid.split("-").map(Number);
  try {
    const v = await api(`/api/v1/videos/${id}`);
    return `${v.name} ${fmt(start / 1000)}–${fmt(end / 1000)}`;
  } catch (err) {
    return null;  // the search itself reports what is wrong with the id
  }
}

function moreLike(r) {
  closePlayer();
  $("q").value = "";
  runSearch({ similar: r.moment_id, label: `${r.video.name} ${fmt(r.start)}–${fmt(r.end)}` });
}

// ---------------------------------------------------------------- keyboard selection

function select(index, focus = true) {
  const cards = $("results").children;
  if (!cards.length) return;
  index = Math.max(0, Math.min(cards.length - 1, index));
  if (state.selected >= 0 && cards[state.selected]) cards[state.selected].classList.remove("selected");
  state.selected = index;
  cards[index].classList.add("selected");
  if (focus) { cards[index].focus({ preventScroll: true }); cards[index].scrollIntoView({ block: "nearest" }); }
}

function columns() {
  const cards = [...$("results").children];
  if (!cards.length) return 1;
  const top = cards[0].offsetTop;
  const n = cards.findIndex((c) => c.offsetTop !== top);
  return n < 0 ? cards.length : n;
}

document.addEventListener("keydown", (e) => {
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
  if (e.key === "Escape") { if (!$("overlay").hidden) { closePlayer(); e.preventDefault(); } else if (typing) document.activeElement.blur(); return; }
  if (!$("overlay").hidden) {
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "b" && !$("toggle-actors").hidden) toggleActors();
    else if ((e.key === " " && document.activeElement.tagName !== "BUTTON") || e.key === "k") { e.preventDefault(); togglePlay(); }
    else if (e.key === "ArrowLeft" || e.key === "ArrowRight") { e.preventDefault(); seekBy(e.key === "ArrowLeft" ? -5 : 5); }
    return;
  }
  if (e.key === "/" && !typing) { e.preventDefault(); $("q").focus(); $("q").select(); return; }
  if (typing) { if (e.key === "ArrowDown" && document.activeElement === $("q") && state.results.length) { e.preventDefault(); select(Math.max(0, state.selected)); } return; }
  const moves = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -columns(), ArrowDown: columns() };
  if (e.key in moves && state.results.length) { e.preventDefault(); select(state.selected + moves[e.key]); if (state.selected >= state.results.length - columns() && state.cursor) loadMore(); }
  else if (e.key === "Enter" && state.selected >= 0 && !document.activeElement.closest("button, a[href]")) { e.preventDefault(); openPlayer(state.results[state.selected]); } // a button's own Enter clicks it
  else if (e.key === "m" && state.selected >= 0) { moreLike(state.results[state.selected]); }
});

// ---------------------------------------------------------------- the player

// The spoken words of a result, the matched ones marked (textContent only: words are never HTML).
function quote(said) {
  const q = document.createElement("q");
  q.className = "said";
  const at = said.match ? said.text.indexOf(said.match) : -1;
  if (at < 0) {
    q.textContent = said.text;
  } else {
    const mark = document.createElement("mark");
    mark.textContent = said.match;
    q.append(said.text.slice(0, at), mark, said.text.slice(at + said.match.length));
  }
  q.title = `said at ${fmt(said.start)}–${fmt(said.end)}`;
  return q;
}

// ---------------------------------------------------------------- transcript panel and captions
// The player shows what is said: a WebVTT captions track on the video and the lines beside it,
// the one being spoken highlighted as playback moves; a click on a line plays from it.

const transcript = { lines: [], now: -1 };

async function loadTranscript(r) {
  const panel = $("transcript"), video = $("video");
  resetTranscript();
  if (r.video.playable) {
    const track = document.createElement("track");
    track.kind = "captions";
    track.label = "Transcript";
    track.src = `/api/v1/videos/${encodeURIComponent(r.video.id)}/transcript.vtt`;
    track.default = true;
    video.append(track);
  }
  let data;
  try {
    data = await api(`/api/v1/videos/${encodeURIComponent(r.video.id)}/transcript`);
  } catch (err) {
    return; // no transcript is no error of the player's
  }
  if (state.current !== r || !data.lines.length) return;
  transcript.lines = data.lines;
  for (const [i, line] of data.lines.entries()) {
    const li = document.createElement("li");
    const t = document.createElement("time");
    t.textContent = fmt(line.start);
    const text = document.createElement("span");
    if (r.said && line.text === r.said.text && line.start <= r.said.start && r.said.end <= line.end + 0.01) {
      text.append(quote(r.said).cloneNode(true));
    } else {
      text.textContent = line.text;
    }
    li.append(t, text);
    li.addEventListener("click", () => {
      if (!r.video.playable) return;
      video.currentTime = line.start;
      video.play().catch(() => {});
    });
    li.dataset.index = i;
    panel.append(li);
  }
  panel.hidden = false;
  followTranscript();
}

function resetTranscript() {
  const panel = $("transcript");
  panel.replaceChildren();
  panel.hidden = true;
  transcript.lines = [];
  transcript.now = -1;
  for (const track of [...$("video").querySelectorAll("track")]) track.remove();
}

function followTranscript() {
  const t = $("video").currentTime;
  const now = transcript.lines.findIndex((line) => line.start <= t && t < line.end);
  if (now === transcript.now) return;
  const items = $("transcript").children;
  if (transcript.now >= 0 && items[transcript.now]) items[transcript.now].classList.remove("now");
  transcript.now = now;
  if (now >= 0 && items[now]) {
    items[now].classList.add("now");
    items[now].scrollIntoView({ block: "nearest" });
  }
}

// The player's place in the URL: #v=<video>&t=<time shown>&span=<start>,<end> (a link opens it there).
// A stream's are its clock's times (the player's count from its clip's start).
function playerHash(r, t) {
  const o = r.offset || 0;
  return `#v=${r.video.id}&t=${(t + o).toFixed(2)}&span=${(r.start + o).toFixed(2)},${(r.end + o).toFixed(2)}`;
}

function openPlayer(r, at = null) {
  r = inClip(r);
  if ($("overlay").hidden) state.opener = document.activeElement; // focus goes back there on close
  setBehindDialog(true);
  state.current = r;
  const video = $("video");
  const from = at != null && isFinite(at) ? at : r.start;
  $("overlay").hidden = false;
  $("player-title").textContent = r.video.name;
  $("player-span").textContent = `match ${when(r, r.start)}–${when(r, r.end)}`;
  $("player-span").title = matchText(r);
  const d = r.video.duration || r.end;
  $("span").style.left = `${(100 * r.start) / d}%`;
  $("span").style.width = `${Math.max(0.5, (100 * (r.end - r.start)) / d)}%`;
  $("playhead").style.left = `${(100 * from) / d}%`;
  $("player-error").hidden = true;
  $("copy-link").textContent = "Copy link at this time";
  history.replaceState(null, "", `${location.pathname}${location.search}${playerHash(r, from)}`);
  if (r.video.playable) {
    $("stills").hidden = true;
    video.hidden = false;
    $("replay").hidden = false;
    $("controls").hidden = false;
    video.dataset.start = from;
    video.src = at == null ? r.play_url : r.play_url.replace(/#t=.*$/, `#t=${from.toFixed(3)}`); // the media fragment starts playback there
    video.addEventListener("loadedmetadata", () => {
      if (Math.abs(video.currentTime - from) > 0.05) video.currentTime = from;
      video.play().catch(() => { /* autoplay refused: the user presses play */ });
    }, { once: true });
  } else {
    video.removeAttribute("src");
    video.load();
    video.hidden = true;
    $("replay").hidden = true;
    $("controls").hidden = true;
    showStills(r);
  }
  showClock();
  loadHeat(r, state.search, readFilters().min_score);
  loadActors(r);
  loadTranscript(r);
  document.dispatchEvent(new CustomEvent("vidsearch:moment", { detail: r })); // static/clips.js
  $("close").focus();
}

function showStills(r) {
  const box = $("stills");
  box.replaceChildren();
  const note = document.createElement("p");
  if (!r.thumbnail_url) { // a stream's moment that was not recorded (or whose recording is deleted)
    note.textContent = "This stream was not recorded at this time: there is nothing to play.";
    box.append(note);
    box.hidden = false;
    return;
  }
  note.textContent = "This file's codec does not play in a browser; these are stills across the match.";
  for (let i = 0; i < 4; i++) {
    const img = document.createElement("img");
    const t = r.start + ((r.end - r.start) * (i + 0.5)) / 4;
    const v = new URL(r.thumbnail_url, location.href).searchParams.get("v");
    img.src = `/thumbs/${r.video.id}/${Math.round(t * 1000)}.jpg?w=480&v=${v}`;
    img.alt = `frame at ${fmt(t)}`;
    box.append(img);
  }
  box.append(note);
  box.hidden = false;
}

function closePlayer() {
  if ($("overlay").hidden) return;
  const video = $("video");
  video.pause();
  video.removeAttribute("src");
  video.load();
  $("overlay").hidden = true;
  setBehindDialog(false);
  state.current = null;
  resetActors();
  resetTranscript();
  clearHeat();
  history.replaceState(null, "", `${location.pathname}${location.search}`);
  const cards = $("results").children, opener = state.opener;
  state.opener = null;
  if (opener && opener.isConnected && opener !== document.body) opener.focus({ preventScroll: true });
  else if (state.selected >= 0 && cards[state.selected]) cards[state.selected].focus({ preventScroll: true });
}

// What lies behind the open player is inert: no focus, no clicks, hidden from screen readers.
function setBehindDialog(inert) {
  for (const el of document.querySelectorAll("body > header, body > section, body > main")) el.inert = inert;
}

// A modal dialog: Tab and Shift+Tab cycle through the player's controls, never behind it.
document.addEventListener("keydown", (e) => {
  if (e.key !== "Tab" || $("overlay").hidden) return;
  const inside = [...$("overlay").querySelectorAll("button, select, video[controls], [href], [tabindex]:not([tabindex='-1'])")]
    .filter((el) => !el.hidden && !el.closest("[hidden]") && el.getClientRects().length);
  if (!inside.length) return;
  const first = inside[0], last = inside[inside.length - 1];
  if (e.shiftKey && (document.activeElement === first || !$("overlay").contains(document.activeElement))) { e.preventDefault(); last.focus(); }
  else if (!e.shiftKey && (document.activeElement === last || !$("overlay").contains(document.activeElement))) { e.preventDefault(); first.focus(); }
});

$("video").addEventListener("timeupdate", () => {
  const r = state.current, video = $("video");
  if (!r) return;
  const d = video.duration || r.video.duration || 1;
  $("playhead").style.left = `${(100 * video.currentTime) / d}%`;
  followTranscript();
  showClock();
  followInUrl();
});

// ---------------------------------------------------------------- the player's own controls
// The native controls would draw a second timeline; these carry play, time, sound and full screen,
// and the one timeline above carries the span, the heat strip and the matching spans.

// Drawn icons: the symbol fonts a system has vary, an SVG path does not.
const svg = (d) => `<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true"><path fill="currentColor" d="${d}"/></svg>`;
const ICONS = {
  play: svg("M7 4.5v15l13-7.5z"),
  pause: svg("M6 4h4v16H6zM14 4h4v16h-4z"),
  sound: svg("M3 9v6h4l5 4V5L7 9zm13.5 3a4.5 4.5 0 0 0-2.5-4v8a4.5 4.5 0 0 0 2.5-4zM14 3.2v2.1a7 7 0 0 1 0 13.4v2.1a9 9 0 0 0 0-17.6z"),
  muted: svg("M3 9v6h4l5 4V5L7 9zm17.6 3 2.1-2.1-1.4-1.4-2.1 2.1-2.1-2.1-1.4 1.4 2.1 2.1-2.1 2.1 1.4 1.4 2.1-2.1 2.1 2.1 1.4-1.4z"),
  fullscreen: svg("M4 4h6v2H6v4H4zm10 0h6v6h-2V6h-4zM4 14h2v4h4v2H4zm14 0h2v6h-6v-2h4z"),
};

function showClock() {
  const video = $("video"), r = state.current;
  if (!r) return;
  const d = video.duration || r.video.duration || 0;
  $("clock").textContent = `${fmt(video.currentTime)} / ${fmt(d)}`;
  const playing = !video.paused && !video.ended;
  $("play").innerHTML = playing ? ICONS.pause : ICONS.play;
  $("play").setAttribute("aria-label", playing ? "Pause" : "Play");
  $("mute").innerHTML = video.muted ? ICONS.muted : ICONS.sound;
  $("mute").setAttribute("aria-pressed", String(video.muted));
}

function togglePlay() {
  const video = $("video");
  if (!state.current || video.hidden) return;
  if (video.paused || video.ended) video.play().catch(() => {}); else video.pause();
}

function seekBy(seconds) {
  const video = $("video");
  if (!state.current || video.hidden) return;
  video.currentTime = Math.max(0, Math.min((video.duration || Infinity) - 0.05, video.currentTime + seconds));
}

// The URL follows seeks and playback (at most every 0.5 s), so the address is always a link to now.
let urlTimer = null;
function followInUrl() {
  if (urlTimer != null) return;
  urlTimer = setTimeout(() => {
    urlTimer = null;
    const r = state.current;
    if (r) history.replaceState(null, "", `${location.pathname}${location.search}${playerHash(r, $("video").currentTime)}`);
  }, 500);
}

async function copyLink() {
  const r = state.current;
  if (!r) return;
  const link = `${location.origin}${location.pathname}${location.search}${playerHash(r, $("video").currentTime || r.start)}`;
  const button = $("copy-link");
  try {
    await navigator.clipboard.writeText(link);
    button.textContent = "Link copied";
  } catch (_) {
    // no clipboard (a page served over plain HTTP to another machine): show the link to copy by hand
    $("player-span").textContent = link;
    button.textContent = "Copy the link shown";
  }
  button.dataset.link = link;
}

function showMediaError() {
  const r = state.current, video = $("video");
  if (!r || !video.getAttribute("src")) return;
  const box = $("player-error");
  box.textContent = "This video cannot be played now: the server may have stopped, or the file changed or moved since it was indexed. Reload once the server runs again, or run vidsearch index.";
  box.hidden = false;
}

$("fullscreen").innerHTML = ICONS.fullscreen;
$("play").innerHTML = ICONS.play;
$("mute").innerHTML = ICONS.sound;
for (const event of ["play", "pause", "ended", "volumechange", "loadedmetadata", "seeked"]) $("video").addEventListener(event, showClock);
for (const event of ["seeked", "pause"]) $("video").addEventListener(event, followInUrl);
$("video").addEventListener("error", showMediaError);
$("video").addEventListener("click", togglePlay);
$("play").addEventListener("click", togglePlay);
$("mute").addEventListener("click", () => { $("video").muted = !$("video").muted; });
$("fullscreen").addEventListener("click", () => {
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  else $("stage").requestFullscreen().catch(() => {});
});
$("copy-link").addEventListener("click", copyLink);

$("timeline").addEventListener("click", (e) => {
  const r = state.current, video = $("video");
  if (!r || !r.video.playable) return;
  const box = $("timeline").getBoundingClientRect();
  video.currentTime = ((e.clientX - box.left) / box.width) * (video.duration || r.video.duration);
});

$("replay").addEventListener("click", () => { const v = $("video"); v.currentTime = state.current.start; v.play().catch(() => {}); });
$("player-similar").addEventListener("click", () => state.current && moreLike(state.current));
$("close").addEventListener("click", closePlayer);
$("overlay").addEventListener("click", (e) => { if (e.target === $("overlay")) closePlayer(); });

// ---------------------------------------------------------------- people boxes (vidsearch enrich actors)
// The tubes overlapping the time shown are drawn over the picture: each box placed in the
// video's displayed content rectangle (letterboxed or pillarboxed by object-fit: contain),
// interpolated linearly between the tube's keyframes, labelled with the tube's best class.

const ACTOR_COLOURS = ["#f5c518", "#4ade80", "#38bdf8", "#f472b6", "#fb923c", "#a78bfa"];
const TIME_SLACK = 0.05; // s: a seek lands on a frame, not on the keyframe's exact time
const actors = { data: null, scan: 0, show: true, boxes: new Map(), frameCallback: null };
const trackColour = (track) => ACTOR_COLOURS[Math.abs(track) % ACTOR_COLOURS.length]; // a tube's box and timeline mark match

async function loadActors(r) {
  resetActors();
  if (!r.video.playable || r.video.live) return; // streams are never scanned for people
  let data;
  try {
    data = await api(`/api/v1/videos/${encodeURIComponent(r.video.id)}/actors`);
  } catch (_) {
    return; // no boxes: the video still plays
  }
  const scans = data.scans.filter((sc) => sc.tubes.length);
  if (state.current !== r || !scans.length) return; // another moment opened meanwhile, or nobody in it
  actors.data = { ...data, scans };
  actors.scan = 0;
  const pick = $("actor-set");
  pick.replaceChildren(...scans.map((sc, i) => {
    const option = document.createElement("option");
    option.value = String(i);
    option.textContent = `${sc.label_set} (${sc.tubes.length} ${sc.tubes.length === 1 ? "person" : "people"})`;
    return option;
  }));
  pick.hidden = scans.length < 2;
  $("toggle-actors").hidden = false;
  markTubes();
  showActors(actors.show);
  watchFrames();
}

function resetActors() {
  const video = $("video");
  if (actors.frameCallback != null && video.cancelVideoFrameCallback) video.cancelVideoFrameCallback(actors.frameCallback);
  actors.frameCallback = null;
  actors.data = null;
  clearActorBoxes();
  markTubes();
  $("toggle-actors").hidden = true;
  $("actor-set").hidden = true;
}

function clearActorBoxes() {
  $("actors").replaceChildren();
  actors.boxes.clear();
}

// Where people are, under the timeline: one thin mark per tube of the chosen label set.
function markTubes() {
  const timeline = $("timeline");
  timeline.querySelectorAll(".tube").forEach((el) => el.remove());
  const data = actors.data, r = state.current;
  if (!data || !r) return;
  const d = data.duration || r.video.duration || 1;
  for (const tube of data.scans[actors.scan].tubes) {
    const mark = document.createElement("div");
    mark.className = "tube";
    mark.style.left = `${(100 * tube.start) / d}%`;
    mark.style.width = `${Math.max(0.4, (100 * (tube.end - tube.start)) / d)}%`;
    mark.style.setProperty("--c", trackColour(tube.track));
    timeline.append(mark);
  }
}

// Redraw at every frame the player presents (playing or seeking); timeupdate where the browser lacks it.
function watchFrames() {
  const video = $("video");
  if (!video.requestVideoFrameCallback) return;
  const onFrame = () => {
    if (!actors.data) return;
    drawActors();
    actors.frameCallback = video.requestVideoFrameCallback(onFrame);
  };
  actors.frameCallback = video.requestVideoFrameCallback(onFrame);
}

function showActors(show) {
  actors.show = show;
  const button = $("toggle-actors");
  button.setAttribute("aria-pressed", String(show));
  button.textContent = show ? "Hide people" : "Show people";
  drawActors();
}

function toggleActors() { showActors(!actors.show); }

// The rectangle the picture fills inside the <video> element (object-fit: contain), in the overlay's pixels.
function contentBox(video) {
  const cw = video.clientWidth, ch = video.clientHeight;
  const scale = Math.min(cw / video.videoWidth, ch / video.videoHeight);
  const w = video.videoWidth * scale, h = video.videoHeight * scale;
  return { x: video.offsetLeft + (cw - w) / 2, y: video.offsetTop + (ch - h) / 2, w, h };
}

// A tube's box at time t (normalized x1, y1, x2, y2), or null outside its span.
function tubeBoxAt(tube, t) {
  const b = tube.boxes;
  if (!b.length) return null;
  if (b.length === 1) return Math.abs(t - b[0].t) <= 0.5 ? { box: b[0].box, detected: b[0].detected } : null;
  if (t < b[0].t - TIME_SLACK || t > b[b.length - 1].t + TIME_SLACK) return null;
  let k = 0;
  while (k < b.length - 2 && t > b[k + 1].t) k++;
  const a = b[k], c = b[k + 1];
  const w = Math.min(1, Math.max(0, (t - a.t) / (c.t - a.t || 1)));
  return { box: a.box.map((v, i) => v + w * (c.box[i] - v)), detected: (w < 0.5 ? a : c).detected };
}

function actorBox(track) {
  let el = actors.boxes.get(track);
  if (!el) {
    el = document.createElement("div");
    el.className = "actor";
    el.dataset.track = String(track);
    el.style.setProperty("--c", trackColour(track));
    const tag = document.createElement("span"), name = document.createElement("span"), score = document.createElement("span");
    name.className = "actor-label";
    score.className = "actor-score";
    tag.append(name, " ", score);
    el.append(tag);
    $("actors").append(el);
    actors.boxes.set(track, el);
  }
  return el;
}

function drawActors() {
  const video = $("video"), data = actors.data;
  const shown = new Set();
  if (data && actors.show && !video.hidden && video.videoWidth && video.clientWidth) {
    const frame = contentBox(video), t = video.currentTime;
    for (const tube of data.scans[actors.scan].tubes) {
      const at = tubeBoxAt(tube, t);
      if (!at) continue;
      shown.add(tube.track);
      const el = actorBox(tube.track);
      const [x1, y1, x2, y2] = at.box;
      const top = frame.y + y1 * frame.h;
      el.style.left = `${frame.x + x1 * frame.w}px`;
      el.style.top = `${top}px`;
      el.style.width = `${(x2 - x1) * frame.w}px`;
      el.style.height = `${(y2 - y1) * frame.h}px`;
      el.classList.toggle("top", top < 18); // no room above: the label goes inside
      el.classList.toggle("bridged", !at.detected);
      const name = el.querySelector(".actor-label"), label = tube.label || "person";
      if (name.textContent !== label) name.textContent = label; // text, never markup: labels come from user files
      el.querySelector(".actor-score").textContent = tube.score.toFixed(2);
    }
  }
  for (const [track, el] of actors.boxes) if (!shown.has(track)) { el.remove(); actors.boxes.delete(track); }
}

for (const event of ["timeupdate", "seeked", "loadeddata", "resize"]) $("video").addEventListener(event, drawActors);
new ResizeObserver(drawActors).observe($("video"));
$("toggle-actors").addEventListener("click", toggleActors);
$("actor-set").addEventListener("change", (e) => { actors.scan = Number(e.target.value) || 0; clearActorBoxes(); markTubes(); drawActors(); });

// ---------------------------------------------------------------- start-up

async function openShared() {
  const hash = new URLSearchParams(location.hash.slice(1));
  const id = hash.get("v"), times = (hash.get("t") || "").split(",").map(Number);
  // #v=ID&t=TIME&span=START,END (a link at a time), or #v=ID&t=START,END (a link to a span)
  let t = (hash.get("span") || "").split(",").map(Number), at = null;
  if (times.length === 1 && hash.get("t") && isFinite(times[0])) at = times[0];
  else if (times.length === 2) t = times;
  if (t.length !== 2 || !t.every(isFinite)) t = at != null ? [at, at + 0.1] : [];
  if (!id || t.length !== 2 || !t.every(isFinite)) return;
  try {
    // the server describes the moment as a search result has it (a stream's plays its recording's clip)
    const mid = `${encodeURIComponent(id)}-${Math.round(t[0] * 1000)}-${Math.round(t[1] * 1000)}`;
    const m = await api(`/api/v1/moments/${mid}`);
    // a stream's link times are its clock's; the player counts from the clip's start
    openPlayer({ ...m, rank: 0, score: NaN }, at != null && m.clip_start != null ? at - m.clip_start : at);
  } catch (err) {
    setStatus(err.message, true);
  }
}

async function checkLibrary() {
  try {
    const h = await api("/api/v1/health");
    if (h.status === "loading" && !state.search) {
      setStatus("Loading the model…");
      setTimeout(checkLibrary, 1000);
    } else if (h.indexing) {
      setStatus(`Indexing is under way (${h.counts.videos} videos so far): results grow as it runs.`, true);
      setTimeout(checkLibrary, 5000);
    } else if (!h.counts.videos) {
      setStatus("The library is empty. Index a folder of videos first: vidsearch index ~/Videos", true);
    } else if (!state.search) {
      setStatus(`${h.counts.videos} videos indexed (${h.counts.hours.toFixed(1)} h). Type what you want to see.`);
    }
    document.body.dataset.videos = h.counts.videos;
    state.videos = h.counts.videos;
  } catch (err) {
    setStatus(err.message, true);
  }
}

$("search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const query = $("q").value.trim();
  if (query) runSearch({ query });
});
$("toggle-filters").addEventListener("click", () => showFilters($("filters").hidden));
$("filters").addEventListener("change", () => { if (state.search) runSearch(state.search, { push: false }); });
$("more").addEventListener("click", loadMore);
new IntersectionObserver((entries) => { if (entries.some((e) => e.isIntersecting) && state.cursor) loadMore(); }).observe($("more"));
window.addEventListener("popstate", () => { const s = readUrl(); if (s.query || s.similar) runSearch(s, { push: false }); });

(async function start() {
  const initial = readUrl();
  $("q").focus();
  await checkLibrary();
  if (initial.query || initial.similar) await runSearch(initial, { push: false });
  await openShared();
})();
