// vidsearch serve: the Streams view (#streams). Each watched stream's status and latest frame,
// its recent alerts with their clips, kept live by server-sent events (/api/v1/streams/events).
// A module: nothing leaks into app.js's globals.
// Every name and query comes from users or cameras: set as text, never as markup.

const ALERTS_SHOWN = 10; // per stream
const ALERTS_FETCHED = 200;

const view = { es: null, streams: new Map(), alerts: new Map(), cards: new Map() };
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
};

function localTime(t) {
  const d = new Date(t * 1000);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

function timeEl(t) {
  const e = el("time", null, localTime(t));
  e.dateTime = new Date(t * 1000).toISOString();
  return e;
}

async function getJson(path) {
  const resp = await fetch(path, { credentials: "same-origin" });
  let body = null;
  try { body = await resp.json(); } catch (_) { /* not JSON */ }
  if (!resp.ok) throw new Error((body && body.error) || `HTTP ${resp.status}`);
  return body;
}

function say(text) { document.getElementById("streams-status").textContent = text; }

// ---------------------------------------------------------------- one stream's card

function stateText(s) {
  if (!s) return "no status (the watch has not reported)";
  if (s.stale) return `not running (last report ${localTime(s.updated_at)})`;
  if (s.state === "failed") return `failed: ${s.error || "cannot read the stream"}`;
  return { connecting: "connecting…", connected: "live", reconnecting: "reconnecting…", stopped: "stopped" }[s.state] || s.state;
}

function card(name) {
  let c = view.cards.get(name);
  if (c) return c;
  const li = el("li", "stream");
  li.dataset.stream = name;
  const head = el("div", "stream-head");
  const title = el("h2", "stream-name", name);
  title.title = name;
  const badge = el("span", "stream-state");
  head.append(title, badge);
  const frame = el("img", "stream-frame");
  frame.alt = `Latest frame of ${name}`;
  frame.hidden = true;
  const noFrame = el("div", "stream-frame none", "No frame yet");
  const facts = el("p", "stream-facts");
  const list = el("ol", "alerts");
  list.setAttribute("aria-label", `Alerts of ${name}`);
  const empty = el("p", "alerts-none", "No alerts yet.");
  li.append(head, frame, noFrame, facts, list, empty);
  c = { li, badge, frame, noFrame, facts, list, empty, uri: null };
  view.cards.set(name, c);
  const box = document.getElementById("streams-list");
  const names = [...view.cards.keys()].sort();
  const next = names[names.indexOf(name) + 1];
  box.insertBefore(li, next ? view.cards.get(next).li : null);
  return c;
}

function showStream(s) {
  view.streams.set(s.name, s);
  const c = card(s.name);
  c.badge.textContent = stateText(s);
  c.li.dataset.state = s.stale ? "stale" : s.state;
  c.badge.title = s.uri;
  const facts = [`${s.windows} windows`, `${s.drops} dropped`, `${s.gaps} gap${s.gaps === 1 ? "" : "s"}`];
  if (s.last_window) facts.push(`last window ${localTime(s.last_window)}`);
  c.facts.textContent = facts.join(" · ");
  if (s.frame_url && c.frame.getAttribute("src") !== s.frame_url) {
    c.frame.src = s.frame_url; // the URL changes with each new frame: the browser fetches it anew
    c.frame.hidden = false;
    c.noFrame.hidden = true;
  }
  document.getElementById("streams-empty").hidden = view.cards.size > 0;
}

// ---------------------------------------------------------------- alerts

function alertItem(a) {
  const li = el("li", "alert");
  li.dataset.alert = a.id;
  fillAlert(li, a);
  return li;
}

function fillAlert(li, a) {
  const open = li.querySelector("video");
  li.replaceChildren();
  const row = el("div", "alert-row");
  const query = el("span", "alert-query", a.query);
  const score = el("span", "alert-score", `peak ${a.peak.toFixed(3)}`);
  score.title = `score ${a.score.toFixed(3)} when it started; threshold ${a.threshold.toFixed(3)}`;
  row.append(timeEl(a.start), query, score);
  if (a.ongoing) row.append(el("span", "alert-live", "ongoing"));
  else if (a.end) row.append(el("span", "alert-until", `until ${new Date(a.end * 1000).toLocaleTimeString()}`));
  if (a.clip_url) {
    const play = el("button", "ghost alert-play", "Play clip");
    play.type = "button";
    play.setAttribute("aria-label", `Play the clip of "${a.query}" at ${localTime(a.start)}`);
    play.setAttribute("aria-expanded", "false");
    play.addEventListener("click", () => toggleClip(li, a, play));
    row.append(play);
  } else if (!a.ongoing) {
    row.append(el("span", "alert-noclip", "no clip"));
  }
  li.append(row);
  if (open && a.clip_url) li.append(open);
}

function toggleClip(li, a, button) {
  const shown = li.querySelector("video");
  if (shown) {
    shown.pause();
    shown.remove();
    button.setAttribute("aria-expanded", "false");
    button.textContent = "Play clip";
    return;
  }
  const video = el("video", "alert-clip");
  video.controls = true;
  video.playsInline = true;
  video.preload = "auto";
  video.setAttribute("aria-label", `Clip of "${a.query}" on ${a.stream} at ${localTime(a.start)}`);
  video.addEventListener("error", () => {
    video.replaceWith(el("p", "alert-gone", "This clip is gone (deleted with the stream's old recordings)."));
    button.remove();
  });
  video.src = a.clip_url;
  li.append(video);
  button.setAttribute("aria-expanded", "true");
  button.textContent = "Hide clip";
  video.play().catch(() => { /* autoplay refused: the controls are there */ });
}

function showAlert(a) {
  view.alerts.set(a.id, a);
  const c = card(a.stream);
  const existing = c.list.querySelector(`li[data-alert="${CSS.escape(a.id)}"]`);
  if (existing) {
    fillAlert(existing, a);
  } else {
    const item = alertItem(a);
    const later = [...c.list.children].find((li) => view.alerts.get(li.dataset.alert).start < a.start);
    c.list.insertBefore(item, later || null);
    while (c.list.children.length > ALERTS_SHOWN) c.list.lastElementChild.remove();
  }
  c.empty.hidden = c.list.children.length > 0;
}

// ---------------------------------------------------------------- loading and live updates

async function refresh() {
  try {
    const [s, a] = await Promise.all([getJson("/api/v1/streams"), getJson(`/api/v1/alerts?limit=${ALERTS_FETCHED}`)]);
    s.streams.forEach(showStream);
    [...a.alerts].reverse().forEach(showAlert);
    document.getElementById("streams-empty").hidden = view.cards.size > 0;
  } catch (err) {
    say(err.message);
  }
}

function listen() {
  if (view.es) return;
  const es = new EventSource("/api/v1/streams/events");
  view.es = es;
  es.addEventListener("stream", (e) => showStream(JSON.parse(e.data)));
  es.addEventListener("alert", (e) => showAlert(JSON.parse(e.data)));
  es.addEventListener("alert_end", (e) => showAlert(JSON.parse(e.data)));
  es.addEventListener("ready", () => { say(""); refresh(); }); // anything missed while (re)connecting
  es.onerror = () => say("Lost the server; reconnecting…"); // EventSource retries by itself
}

function stopListening() {
  if (view.es) view.es.close();
  view.es = null;
}

// ---------------------------------------------------------------- the view and its link

function build() {
  const section = document.getElementById("streams-view");
  if (section.childElementCount) return;
  const h = el("h1", "streams-title", "Streams");
  h.id = "streams-title";
  section.setAttribute("aria-labelledby", "streams-title");
  const status = el("p", "status");
  status.id = "streams-status";
  status.setAttribute("role", "status");
  status.setAttribute("aria-live", "polite");
  const none = el("p", "status note", "No streams yet. Start one with: vidsearch watch rtsp://camera/stream --name door --alert \"a person at the door\"");
  none.id = "streams-empty";
  none.hidden = true;
  const list = el("ul", "stream-list");
  list.id = "streams-list";
  list.setAttribute("aria-label", "Watched streams");
  section.append(h, status, none, list);
}

function route() {
  const on = location.hash === "#streams";
  document.querySelector("main").hidden = on;
  document.getElementById("streams-view").hidden = !on;
  const [current, other] = on ? ["streams-link", "search-link"] : ["search-link", "streams-link"];
  document.getElementById(current).setAttribute("aria-current", "page");
  document.getElementById(other).removeAttribute("aria-current");
  if (on) {
    document.getElementById("filters").hidden = true;
    build();
    listen();
    refresh();
  } else {
    stopListening();
    for (const v of document.querySelectorAll("#streams-view video")) v.pause();
  }
}

for (const [id, to] of [["streams-link", "#streams"], ["search-link", ""]]) {
  document.getElementById(id).addEventListener("click", (e) => {
    e.preventDefault();
    if ((location.hash === "#streams") !== (to === "#streams")) {
      history.pushState(null, "", `${location.pathname}${location.search}${to}`);
      route();
    }
  });
}
// a search typed while the streams show goes back to the results (app.js runs it)
document.getElementById("search-form").addEventListener("submit", () => {
  if (location.hash !== "#streams") return;
  history.replaceState(null, "", `${location.pathname}${location.search}`);
  route();
});
window.addEventListener("popstate", route);
window.addEventListener("hashchange", route);
route();
