// The upload page: the option controls come from the API's own schema (so they follow fakescope.options),
// an upload with its progress, then the analysis progress, then the job's page.
"use strict";
const drop = document.getElementById("drop");
const fileInput = document.getElementById("file");
const optionsBox = document.getElementById("options");
const progressBox = document.getElementById("progress");
const progressBar = document.getElementById("progress-bar");
const progressLabel = document.getElementById("progress-label");
const message = document.getElementById("message");

async function buildOptionControls() {
  const schema = await fetch("/openapi.json", { credentials: "same-origin" }).then((r) => r.json());
  for (const [name, property] of Object.entries(schema.components.schemas.ScanOptions.properties)) {
    if (name === "file") continue;
    const types = property.anyOf ? property.anyOf.map((t) => t.type) : [property.type];
    let control;
    if (property.enum) {
      control = element("select", { name });
      for (const value of property.enum) control.append(element("option", { value }, value));
      control.value = property.default;
    } else if (types.includes("boolean")) {
      control = element("input", { name, type: "checkbox" });
      control.checked = Boolean(property.default);
    } else {
      control = element("input", { name, type: "number", step: types.includes("integer") ? "1" : "any", min: "0", placeholder: "default", style: "width:7em" });
      if (property.default !== null && property.default !== undefined) control.value = property.default;
    }
    control.title = property.description || "";
    optionsBox.append(element("label", { title: property.description || "" }, `${name} `, control));
  }
}

function formFor(file) {
  const form = new FormData();
  form.append("file", file);
  for (const control of optionsBox.querySelectorAll("[name]")) {
    if (control.type === "checkbox") form.append(control.name, control.checked ? "true" : "false");
    else if (control.value !== "") form.append(control.name, control.value);
  }
  return form;
}

function upload(file) {
  message.textContent = "";
  progressBox.classList.remove("hidden");
  progressLabel.textContent = `Uploading ${file.name}…`;
  progressBar.removeAttribute("value");
  const request = new XMLHttpRequest();
  request.open("POST", `${API}/jobs`);
  request.upload.onprogress = (event) => {
    if (event.lengthComputable) progressBar.value = event.loaded / event.total;
  };
  request.onload = () => {
    let body = {};
    try { body = JSON.parse(request.responseText); } catch (_) { /* not JSON */ }
    if (request.status !== 202) {
      progressBox.classList.add("hidden");
      const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || request.statusText);
      message.textContent = `Not accepted (${request.status}): ${detail}`;
      return;
    }
    followAnalysis(body.id);
  };
  request.onerror = () => { progressBox.classList.add("hidden"); message.textContent = "The upload failed (connection lost)."; };
  request.send(formFor(file));
}

async function followAnalysis(jobId) {
  progressBar.value = 0;
  for (;;) {
    const job = await api(`/jobs/${jobId}`);
    const { frames_done: done, frames_total: total } = job.progress;
    if (job.state === "queued") progressLabel.textContent = `Queued (${job.queue_position} ahead)…`;
    else if (job.state === "running") {
      progressLabel.textContent = `Analysing: ${done}${total ? " / " + total : ""} frames`;
      if (total) progressBar.value = done / total; else progressBar.removeAttribute("value");
    } else { location.href = job.page; return; }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function listJobs() {
  const { jobs } = await api("/jobs?limit=50");
  const rows = jobs.map((job) => {
    const verdict = job.summary ? job.summary.verdict : null;
    return element("tr", {},
      element("td", {}, element("a", { href: job.page }, job.name)),
      element("td", {}, job.state),
      element("td", {}, verdict ? verdictBadge(verdict) : "–"),
      element("td", {}, score(job.summary && job.summary.p_fake)),
      element("td", {}, when(job.created)));
  });
  document.querySelector("#jobs tbody").replaceChildren(...rows);
}

drop.addEventListener("click", () => fileInput.click());
drop.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") fileInput.click(); });
fileInput.addEventListener("change", () => { if (fileInput.files.length) upload(fileInput.files[0]); });
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  if (event.dataTransfer.files.length) upload(event.dataTransfer.files[0]);
});

api("/model").then((model) => {
  document.getElementById("model").textContent = `model ${model.name}, weights sha256 ${model.sha256.slice(0, 12)}…, threshold ${Number(model.threshold).toFixed(3)}`;
}).catch(() => {});
buildOptionControls().catch((error) => { message.textContent = `Options unavailable: ${error.message}`; });
listJobs().catch((error) => { message.textContent = `Jobs unavailable: ${error.message}`; });
setInterval(() => listJobs().catch(() => {}), 5000);
