// vidsearch serve: query by example. A clip or a still image searches the library: picked with the
// "By example" button, dropped anywhere on the page, or pasted from the clipboard. The server
// encodes a still as a static clip. Uses app.js's runSearch; plain JavaScript, no build step.
"use strict";

const EXAMPLE_TYPES = /^(video|image)\//;

// The multipart body of an example search: the file and the page's filters (what app.js's loadMore sends).
function exampleForm(file, filters) {
  const form = new FormData();
  form.append("file", file, file.name || "pasted.png");
  form.append("k", String(PAGE));
  if (state.cursor) form.append("cursor", state.cursor);
  for (const [k, v] of Object.entries(filters)) {
    if (v == null || k === "rerank" || k === "mode") continue; // re-ranking and the said-words mode: text only
    form.append(k, String(v));
  }
  return form;
}

function searchByExample(file) {
  if (!file) return;
  if (!EXAMPLE_TYPES.test(file.type || "")) {
    setStatus(`${file.name || "That file"} is not a video or an image; drop a clip or a still to search with it.`, true);
    return;
  }
  $("q").value = "";
  runSearch({ file, label: file.name || "the pasted image" });
}

$("pick-example").addEventListener("click", () => $("example-file").click());
$("example-file").addEventListener("change", (e) => {
  const file = e.target.files[0];
  e.target.value = ""; // picking the same file again searches again
  searchByExample(file);
});

// Drag and drop: the page shows where to drop while a file is dragged over it.
let dragDepth = 0;
const dragsFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes("Files");
document.addEventListener("dragenter", (e) => {
  if (!dragsFiles(e)) return;
  dragDepth++;
  $("drop").hidden = false;
});
document.addEventListener("dragleave", () => {
  if (dragDepth > 0 && --dragDepth === 0) $("drop").hidden = true;
});
document.addEventListener("dragover", (e) => { if (dragsFiles(e)) e.preventDefault(); });
document.addEventListener("drop", (e) => {
  if (!dragsFiles(e)) return;
  e.preventDefault(); // the browser would open the file instead
  dragDepth = 0;
  $("drop").hidden = true;
  searchByExample(e.dataTransfer.files[0]);
});

// Paste: an image on the clipboard searches (text pasted into the search box stays text).
document.addEventListener("paste", (e) => {
  const item = [...(e.clipboardData ? e.clipboardData.items : [])].find((i) => i.kind === "file" && EXAMPLE_TYPES.test(i.type));
  if (!item) return;
  e.preventDefault();
  searchByExample(item.getAsFile());
});
