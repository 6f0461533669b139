// Live detection: the camera plays in a <video>; one frame at a time (the newest) is sent to the server as a JPEG
// over a WebSocket; its answer's boxes are drawn over the video. Latency is measured from the frame's capture to
// the drawing of its boxes.
"use strict";
const SEND_WIDTH = 640; // frames are sent at most this wide (the detector looks at 480 px anyway)
const HEADER_BYTES = 12; // uint32 frame number, float64 capture time (ms), little-endian
const video = document.getElementById("video");
const overlay = document.getElementById("overlay");
const state = document.getElementById("state");
const stats = document.getElementById("stats");
const capture = document.createElement("canvas");

// Read by the browser tests and the benchmark.
const live = window.fakescopeLive = {
  analyses: 0, boxesDrawn: 0, latencies: [], shownFps: 0, analysesPerSecond: 0, lastAnswer: null, error: null,
};
let socket = null, stream = null, frameNumber = 0, inFlight = false, latest = null, pendingDraw = null;
let shownTimes = [], answerTimes = [];

function rate(times, now) {
  while (times.length && now - times[0] > 2000) times.shift();
  return times.length > 1 ? (times.length - 1) * 1000 / (now - times[0]) : 0;
}

function percentile(values, p) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p / 100 * sorted.length))];
}

function sendFrame() {
  if (!socket || socket.readyState !== WebSocket.OPEN || inFlight || !video.videoWidth) return;
  const scale = Math.min(1, SEND_WIDTH / video.videoWidth);
  capture.width = Math.round(video.videoWidth * scale);
  capture.height = Math.round(video.videoHeight * scale);
  const capturedMs = performance.now();
  capture.getContext("2d").drawImage(video, 0, 0, capture.width, capture.height);
  inFlight = true;
  const number = ++frameNumber;
  capture.toBlob(async (blob) => {
    if (!blob || !socket || socket.readyState !== WebSocket.OPEN) { inFlight = false; return; }
    const header = new DataView(new ArrayBuffer(HEADER_BYTES));
    header.setUint32(0, number, true);
    header.setFloat64(4, capturedMs, true);
    socket.send(new Blob([header.buffer, blob]));
  }, "image/jpeg", 0.8);
}

function draw() {
  const context = overlay.getContext("2d");
  if (overlay.width !== video.videoWidth || overlay.height !== video.videoHeight) {
    overlay.width = video.videoWidth; overlay.height = video.videoHeight;
  }
  context.clearRect(0, 0, overlay.width, overlay.height);
  const scale = Math.max(1, overlay.width / 1000);
  context.lineWidth = 3 * scale;
  context.font = `${Math.round(18 * scale)}px system-ui, sans-serif`;
  if (latest) {
    const toVideo = overlay.width / latest.width;
    for (const face of latest.faces) {
      const [x1, y1, x2, y2] = face.box.map((v) => v * toVideo);
      const colour = face.label === "fake" ? "#cf222e" : "#1a7f37";
      context.strokeStyle = colour;
      context.strokeRect(x1, y1, x2 - x1, y2 - y1);
      const text = `${face.label} ${face.p_smooth.toFixed(2)}`;
      const height = 24 * scale;
      context.fillStyle = colour;
      context.fillRect(x1, Math.max(0, y1 - height), context.measureText(text).width + 10 * scale, height);
      context.fillStyle = "#fff";
      context.fillText(text, x1 + 5 * scale, Math.max(0, y1 - height) + height - 6 * scale);
      live.boxesDrawn += 1;
    }
  }
  const p95 = percentile(live.latencies.slice(-200), 95);
  const last = live.latencies.length ? live.latencies[live.latencies.length - 1] : null;
  const banner = `${live.shownFps.toFixed(1)} fps shown | ${live.analysesPerSecond.toFixed(1)} analyses/s | latency ${last === null ? "–" : Math.round(last) + " ms"} (p95 ${p95 === null ? "–" : Math.round(p95)} ms)`;
  context.fillStyle = "rgba(0,0,0,0.6)";
  context.fillRect(0, 0, context.measureText(banner).width + 16 * scale, 30 * scale);
  context.fillStyle = "#fff";
  context.fillText(banner, 8 * scale, 22 * scale);
  stats.textContent = banner;
  if (pendingDraw !== null) { // the boxes of this answer are on screen now
    live.latencies.push(performance.now() - pendingDraw);
    if (live.latencies.length > 5000) live.latencies.shift();
    pendingDraw = null;
  }
}

function onVideoFrame(now) {
  shownTimes.push(now);
  live.shownFps = rate(shownTimes, now);
  if (stream) video.requestVideoFrameCallback(onVideoFrame);
}

function loop() {
  if (!stream) return;
  sendFrame();
  draw();
  requestAnimationFrame(loop);
}

async function start() {
  document.getElementById("start").disabled = true;
  state.textContent = "Opening the camera…";
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false });
  } catch (error) {
    live.error = `camera: ${error.message}`; state.textContent = live.error;
    document.getElementById("start").disabled = false; return;
  }
  video.srcObject = stream;
  await video.play();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}${API}/live`);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => { state.textContent = "Connected"; };
  socket.onclose = (event) => { state.textContent = `Disconnected${event.reason ? ": " + event.reason : ""}`; inFlight = false; };
  socket.onmessage = (event) => {
    const answer = JSON.parse(event.data);
    inFlight = false;
    if (answer.type !== "analysis") { live.error = answer.detail; return; }
    const now = performance.now();
    answerTimes.push(now);
    live.analysesPerSecond = rate(answerTimes, now);
    live.analyses += 1;
    live.lastAnswer = answer;
    latest = answer;
    pendingDraw = answer.captured_ms;
  };
  document.getElementById("stop").disabled = false;
  if ("requestVideoFrameCallback" in video) video.requestVideoFrameCallback(onVideoFrame);
  requestAnimationFrame(loop);
}

function stop() {
  if (socket) socket.close();
  if (stream) stream.getTracks().forEach((track) => track.stop());
  socket = null; stream = null; latest = null;
  document.getElementById("start").disabled = false;
  document.getElementById("stop").disabled = true;
  state.textContent = "Stopped";
}

document.getElementById("start").addEventListener("click", start);
document.getElementById("stop").addEventListener("click", stop);
if (new URLSearchParams(location.search).has("start")) start();
