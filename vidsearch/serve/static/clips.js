// vidsearch serve: "Download clip" in the player. The player announces the moment it opens with a
// `vidsearch:moment` event (detail: the search result); the link cuts that span as an MP4
// (GET /api/v1/moments/{id}/clip.mp4: the first frame is the frame at the match's start).
"use strict";

(function () {
  function clipLink() {
    let link = document.getElementById("clip-download");
    if (link) return link;
    const foot = document.querySelector("#overlay .player-foot");
    if (!foot) return null;
    link = document.createElement("a");
    link.id = "clip-download";
    link.className = "clip-link";
    link.textContent = "Download clip";
    foot.insertBefore(link, document.getElementById("player-similar"));
    return link;
  }

  document.addEventListener("vidsearch:moment", (e) => {
    const r = e.detail;
    const link = clipLink();
    if (!link || !r || !r.moment_id) return;
    link.href = `/api/v1/moments/${encodeURIComponent(r.moment_id)}/clip.mp4`;
    link.setAttribute("download", ""); // the server names the file (Content-Disposition)
    const span = r.end - r.start;
    link.title = `Save the match (${span.toFixed(1)} s) as an MP4`;
  });
})();
