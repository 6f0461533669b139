// A job's page: its progress while it runs, then the verdict with its evidence.
"use strict";
const jobId = location.pathname.split("/").filter(Boolean).pop();

function showResult(job) {
  const summary = job.summary || {};
  document.getElementById("status").textContent = job.state === "failed" ? `The scan failed: ${job.error}` : "";
  document.getElementById("status").className = job.state === "failed" ? "error" : "";
  document.getElementById("result").classList.remove("hidden");
  document.getElementById("verdict").replaceChildren(verdictBadge(summary.verdict, "big"));
  document.getElementById("score").textContent = summary.p_fake === null || summary.p_fake === undefined
    ? (summary.reason || "")
    : `p_fake ${score(summary.p_fake)} (threshold ${score(summary.threshold)}, ${summary.aggregation}); faces on ${summary.frames_with_faces} of ${summary.frames_analysed} analysed frames`;
  document.getElementById("warnings").replaceChildren(...(summary.warnings || []).map((w) => element("li", {}, w)));
  const files = job.files || {};
  const annotated = document.getElementById("annotated");
  if (files["annotated.mp4"]) {
    const video = element("video", { id: "video", src: files["annotated.mp4"], controls: "", muted: "", autoplay: "", loop: "", playsinline: "" });
    video.muted = true;
    annotated.replaceChildren(video);
  } else if (files["annotated.jpg"]) {
    annotated.replaceChildren(element("img", { class: "result", src: files["annotated.jpg"], alt: "annotated image" }));
  }
  if (files["trend.png"]) {
    const trend = document.getElementById("trend");
    trend.src = files["trend.png"];
    trend.classList.remove("hidden");
  }
  const rows = (summary.tracks || []).map((track) => element("tr", {},
    element("td", {}, track.track_id), element("td", {}, track.frames),
    element("td", {}, `${track.first_frame}–${track.last_frame}`), element("td", {}, score(track.p_fake)),
    element("td", {}, score(track.p_fake_max)), element("td", {}, verdictBadge(track.label)),
    element("td", {}, track.counted ? "yes" : "no (too short)")));
  document.querySelector("#tracks tbody").replaceChildren(...rows);
  const heatmaps = Object.keys(files).filter((name) => name.startsWith("heatmaps/") && !name.endsWith("_crop.png"));
  if (heatmaps.length) {
    document.getElementById("heatmap-section").classList.remove("hidden");
    document.getElementById("heatmaps").replaceChildren(...heatmaps.map((name) =>
      element("a", { href: files[name] }, element("img", { src: files[name], alt: name, title: name }))));
  }
  document.getElementById("files").replaceChildren(...Object.entries(files).map(([name, url]) =>
    element("li", {}, element("a", { href: url }, name))));
  if (summary.model) {
    document.getElementById("model").textContent = `Model ${summary.model.name}, weights sha256 ${summary.model.sha256}. A verdict is a reason to look closer, never proof.`;
  }
}

async function follow() {
  for (;;) {
    let job;
    try { job = await api(`/jobs/${jobId}`); } catch (error) {
      document.getElementById("status").textContent = error.message;
      return;
    }
    document.getElementById("title").textContent = job.name;
    document.title = `fakescope: ${job.name}`;
    if (job.state === "done" || job.state === "failed") { showResult(job); return; }
    const bar = document.getElementById("progress");
    bar.classList.remove("hidden");
    const { frames_done: done, frames_total: total } = job.progress;
    document.getElementById("status").textContent = job.state === "queued"
      ? `Queued (${job.queue_position} ahead)` : `Analysing: ${done}${total ? " / " + total : ""} frames`;
    if (total) bar.value = done / total; else bar.removeAttribute("value");
    await new Promise((resolve) => setTimeout(resolve, 700));
  }
}

document.getElementById("delete").addEventListener("click", async () => {
  if (!confirm("Delete this job and its files?")) return;
  try { await api(`/jobs/${jobId}`, { method: "DELETE" }); location.href = "/"; } catch (error) { alert(error.message); }
});
follow().then(() => document.getElementById("progress").classList.add("hidden"));
