// vidsearch serve: the library view. What is indexed (counts, each video with its status), what
// failed and why, each embedding space's model and precision, transcripts, and an index run's
// progress live (server-sent events from /api/v1/library/events while the view is open).
// Opened by the header's "Library" link (the #library address); streams.js routes #streams, and
// the search results are shown otherwise. Plain JavaScript, no build step.
"use strict";

const library = { events: null, nextCursor: null, shownCounts: null, reload: null };

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v; else if (k in node) node[k] = v; else node.setAttribute(k, v);
  }
  node.append(...children.filter((c) => c != null)); // strings become text: names are never HTML
  return node;
}

function libraryOpen() { return !$("library").hidden; }

async function openLibrary() {
  const view = $("library");
  if (libraryOpen()) return;
  view.hidden = false;
  $("results").hidden = true;
  $("more").hidden = true;
  markView(true);
  view.replaceChildren(
    el("div", { class: "library-head" },
      el("h2", { id: "library-title", tabIndex: -1 }, "Library"),
      el("button", { type: "button", class: "ghost", id: "close-library" }, "Back to results")),
    el("p", { id: "lib-progress", class: "lib-progress", role: "status", "aria-live": "polite" }),
    el("dl", { id: "lib-counts", class: "lib-counts" }),
    el("h3", {}, "Embedding spaces"),
    el("div", { class: "lib-scroll", tabIndex: 0, role: "region", "aria-label": "Embedding spaces" }, el("table", { id: "lib-spaces", class: "lib-table" })),
    el("h3", {}, "Videos"),
    el("div", { class: "lib-scroll", tabIndex: 0, role: "region", "aria-label": "Videos" }, el("table", { id: "lib-videos", class: "lib-table" })),
    el("div", { class: "more" }, el("button", { type: "button", id: "lib-more", hidden: true }, "More videos")),
  );
  $("close-library").addEventListener("click", () => closeLibrary());
  $("lib-more").addEventListener("click", () => loadLibraryVideos(false));
  $("library-title").focus();
  try {
    const info = await api("/api/v1/library");
    showSpaces(info);
    showPulse(info);
    await loadLibraryVideos(true);
  } catch (err) {
    $("lib-progress").textContent = err.message;
  }
  followLibrary();
}

function closeLibrary(push = true, focus = true) {
  if (!libraryOpen()) return;
  if (library.events) library.events.close();
  library.events = null;
  $("library").hidden = true;
  $("library").replaceChildren();
  $("results").hidden = false;
  $("more").hidden = !state.cursor;
  markView(false);
  if (push && location.hash === "#library") history.pushState(null, "", `${location.pathname}${location.search}`);
  if (focus) $("search-link").focus();
}

// The header's view links say which view shows (streams.js marks its own when #streams shows).
function markView(open) {
  if (open) {
    for (const id of ["search-link", "streams-link"]) $(id).removeAttribute("aria-current");
    $("library-link").setAttribute("aria-current", "page");
  } else {
    $("library-link").removeAttribute("aria-current");
    if (location.hash !== "#streams") $("search-link").setAttribute("aria-current", "page");
  }
}

// The counts and the index run's progress, from /api/v1/library or an event.
function showPulse(p) {
  const counts = [
    ["Videos indexed", p.videos], ["Failed", p.failed], ["Moments", p.segments],
    ["Hours", p.hours.toFixed(2)], ["With transcripts", p.transcripts],
  ];
  $("lib-counts").replaceChildren(...counts.map(([label, value]) => el("div", {}, el("dt", {}, label), el("dd", { "data-count": label }, String(value)))));
  const line = $("lib-progress");
  if (p.progress) {
    const pr = p.progress;
    const bar = el("progress", { max: Math.max(1, pr.total), value: pr.done, "aria-label": "Indexing progress" });
    line.replaceChildren(
      `Indexing ${Math.min(pr.done + 1, pr.total)} of ${pr.total}`,
      pr.last ? ` · last done: ${pr.last}` : "",
      pr.failed ? ` · ${pr.failed} failed` : "",
      " ", bar);
  } else {
    line.textContent = p.indexing ? "An index run is writing to the library." : "No index run is going.";
  }
  line.classList.toggle("busy", Boolean(p.indexing));
  const key = `${p.videos}/${p.failed}/${p.segments}`;
  if (library.shownCounts !== null && key !== library.shownCounts) {
    clearTimeout(library.reload); // videos came or went: the list follows (at most every 2 s)
    library.reload = setTimeout(() => libraryOpen() && loadLibraryVideos(true), 2000);
  }
  library.shownCounts = key;
}

function showSpaces(info) {
  const head = el("tr", {}, ...["Model", "Precision", "Videos", "Moments", "Key"].map((h) => el("th", { scope: "col", class: h === "Key" ? "key" : "" }, h)));
  const rows = info.spaces.map((sp) => el("tr", {},
    el("td", {}, sp.model, sp.key === info.searched_space ? el("span", { class: "badge", title: "The space searches use" }, "searched") : null),
    el("td", {}, sp.precision), el("td", {}, String(sp.videos)), el("td", {}, String(sp.segments)),
    el("td", { class: "key" }, sp.key)));
  const table = $("lib-spaces");
  table.replaceChildren(el("caption", { class: "sr-only" }, "Embedding spaces"), el("thead", {}, head), el("tbody", {}, ...rows));
  if (!rows.length) table.replaceChildren(el("caption", {}, "Nothing indexed yet: vidsearch index ~/Videos"));
}

async function loadLibraryVideos(fresh) {
  const qs = new URLSearchParams({ limit: 100 });
  if (!fresh && library.nextCursor) qs.set("cursor", library.nextCursor);
  const page = await api(`/api/v1/library/videos?${qs}`);
  if (!libraryOpen()) return;
  const table = $("lib-videos");
  if (fresh || !table.tBodies.length) {
    const head = el("tr", {}, ...["Name", "Status", "Length", "Indexed"].map((h) => el("th", { scope: "col", class: h === "Indexed" ? "when" : "" }, h)));
    table.replaceChildren(el("caption", { class: "sr-only" }, "Videos"), el("thead", {}, head), el("tbody"));
  }
  for (const v of page.videos) {
    const status = v.status === "failed"
      ? el("td", { class: "failed" }, el("strong", {}, "failed"), el("div", { class: "reason" }, v.reason || "no reason stored"))
      : el("td", {}, v.status);
    table.tBodies[0].append(el("tr", { "data-status": v.status }, el("td", { class: "name" }, v.name), status,
      el("td", {}, v.duration == null ? "-" : fmt(v.duration)),
      el("td", { class: "when" }, v.updated_at ? new Date(v.updated_at).toLocaleString() : "-")));
  }
  library.nextCursor = page.next_cursor;
  $("lib-more").hidden = !page.next_cursor;
}

// Server-sent events while the view is open; the browser reconnects by itself when a stream ends.
function followLibrary() {
  if (library.events || !window.EventSource) return;
  library.events = new EventSource("/api/v1/library/events");
  library.events.addEventListener("pulse", (e) => { if (libraryOpen()) showPulse(JSON.parse(e.data)); });
}

// The "Library" link is a plain #library link: its hashchange opens the view (after streams.js's
// own routing showed the search page's <main>, which holds this view).
// A link's navigation fires popstate and hashchange, and streams.js marks the Search link on both.
function routeLibrary() {
  if (location.hash !== "#library") { closeLibrary(false, false); return; }
  openLibrary();
  markView(true);
}
window.addEventListener("hashchange", routeLibrary);
window.addEventListener("popstate", routeLibrary);
$("search-link").addEventListener("click", () => { if (libraryOpen()) closeLibrary(true, false); });
$("streams-link").addEventListener("click", () => closeLibrary(false, false)); // streams.js moves to #streams
window.addEventListener("pagehide", () => library.events && library.events.close());
routeLibrary();
