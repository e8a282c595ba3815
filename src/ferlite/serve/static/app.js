// The page of `ferlite serve`: your camera (getUserMedia) or a photo sent to POST v1/analyze, or the device's own
// camera (GET v1/camera/stream.mjpg and v1/camera). Plain JS, nothing loaded from elsewhere: it works offline.
"use strict";

const $ = (id) => document.getElementById(id);
const view = $("view"), stream = $("stream"), video = $("camera"), facesBox = $("faces"), statusLine = $("status");
const MAX_SIDE = 640;  // frames are sent at most this large: what the face detector works at anyway
let session = 0;  // bumped by stop(): loops of an older session end
let media = null, poller = null;

// A token in the address bar has set the server's cookie: drop it from the URL (history, screenshots).
if (new URLSearchParams(location.search).has("token")) history.replaceState(null, "", location.pathname);

function say(text, error = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", error);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const pct = (p) => `${Math.round(100 * p)}%`;
const topLabel = (face) => `${face.top} ${pct(face.emotions[face.top])}`;

class ApiError extends Error {
  constructor(message, retryAfter) { super(message); this.retryAfter = retryAfter; }
}

async function analyze(body, type) {
  const response = await fetch("v1/analyze", { method: "POST", headers: { "Content-Type": type }, body });
  const data = await response.json().catch(() => ({ detail: `HTTP ${response.status}` }));
  if (!response.ok) {
    const retry = response.status === 503 ? Number(response.headers.get("Retry-After") || 1) : 0;
    throw new ApiError(`${response.status}: ${data.detail}`, retry);
  }
  return data;
}

function listFaces(faces) {
  facesBox.replaceChildren(...faces.map((face, i) => {
    const card = document.createElement("div");
    card.className = "face";
    const top = document.createElement("div");
    top.className = "top";
    top.textContent = topLabel(face);
    card.append(top);
    for (const [name, p] of Object.entries(face.emotions)) {
      const row = document.createElement("div");
      row.className = "row";
      const label = document.createElement("span"), track = document.createElement("span");
      const fill = document.createElement("span"), value = document.createElement("span");
      label.textContent = name;
      track.className = "track";
      fill.className = "fill";
      fill.style.width = pct(p);
      track.append(fill);
      value.className = "pct";
      value.textContent = pct(p);
      row.append(label, track, value);
      card.append(row);
    }
    card.title = `face ${i + 1}: box ${face.box.join(", ")}, detection score ${face.score.toFixed(2)}`;
    return card;
  }));
}

// Boxes, top expression and per-class bars, drawn over the picture as `ferlite demo` draws them.
function drawFaces(ctx, faces) {
  const scale = Math.max(0.6, Math.min(ctx.canvas.width, ctx.canvas.height) / 480);
  ctx.lineWidth = 2 * scale;
  for (const face of faces) {
    const [x, y, w, h] = face.box;
    ctx.strokeStyle = "#00dc00";
    ctx.strokeRect(x, y, w, h);
    const label = topLabel(face);
    ctx.font = `${Math.round(15 * scale)}px system-ui, sans-serif`;
    const tw = ctx.measureText(label).width, th = 18 * scale, ty = Math.max(th, y - 4);
    ctx.fillStyle = "#000";
    ctx.fillRect(x, ty - th, tw + 8, th + 2);
    ctx.fillStyle = "#00dc00";
    ctx.fillText(label, x + 4, ty - 4 * scale);
    const row = 11 * scale, barW = 50 * scale, names = Object.keys(face.emotions);
    const bx = x + w + 4 + 2 * barW < ctx.canvas.width ? x + w + 4 : Math.max(0, x - 4 - 2 * barW);
    ctx.font = `${Math.round(9 * scale)}px system-ui, sans-serif`;
    names.forEach((name, i) => {
      const yy = y + i * row;
      ctx.fillStyle = "#3c3c3c";
      ctx.fillRect(bx, yy, barW, row - 2);
      ctx.fillStyle = "#ffaa00";
      ctx.fillRect(bx, yy, barW * face.emotions[name], row - 2);
      ctx.fillStyle = "#fff";
      ctx.fillText(name.slice(0, 5), bx + barW + 3, yy + row - 3);
    });
  }
}

function show(picture, width, height, result) {
  view.width = width;
  view.height = height;
  const ctx = view.getContext("2d");
  ctx.drawImage(picture, 0, 0, width, height);
  drawFaces(ctx, result.faces);
  listFaces(result.faces);
}

function stop() {
  session += 1;
  if (media) media.getTracks().forEach((track) => track.stop());
  media = null;
  clearInterval(poller);
  stream.removeAttribute("src");  // closes the MJPEG connection
  stream.hidden = true;
  view.hidden = false;
  $("stop").disabled = true;
}

async function startCamera() {
  stop();
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    say("This browser lets only pages on https:// or on localhost use a camera. Open this page through an SSH " +
        "tunnel (ssh -L 8000:localhost:8000 the-device), or use \u201cThis device's camera\u201d.", true);
    return;
  }
  const mine = session;
  try {
    media = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } } });
  } catch (error) {
    say(`No camera: ${error.message}`, true);
    return;
  }
  video.srcObject = media;
  await video.play();
  $("stop").disabled = false;
  say("Your camera: sending frames\u2026");
  const grab = document.createElement("canvas");
  let frames = 0, since = performance.now();
  while (session === mine) {
    if (!video.videoWidth) { await sleep(50); continue; }
    const k = Math.min(1, MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
    grab.width = Math.round(video.videoWidth * k);
    grab.height = Math.round(video.videoHeight * k);
    grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
    const blob = await new Promise((resolve) => grab.toBlob(resolve, "image/jpeg", 0.85));
    try {
      const result = await analyze(blob, "image/jpeg");  // the next frame goes when this one is answered
      if (session !== mine) break;
      show(grab, grab.width, grab.height, result);
      frames += 1;
      const seconds = (performance.now() - since) / 1000;
      say(`Your camera: ${result.faces.length} face(s), ${(frames / seconds).toFixed(1)} frames/s`);
    } catch (error) {
      say(error.retryAfter ? `Server busy, retrying in ${error.retryAfter} s` : error.message, !error.retryAfter);
      await sleep(1000 * (error.retryAfter || 1));
    }
  }
}

async function pollServerCamera(mine) {
  const response = await fetch("v1/camera");
  const data = await response.json().catch(() => ({ detail: `HTTP ${response.status}` }));
  if (session !== mine) return;
  if (!response.ok) { say(`${response.status}: ${data.detail}`, true); return; }
  listFaces(data.faces);
  say(`This device's camera: frame ${data.frame}, ${data.faces.length} face(s)` +
      (data.fps ? `, ${data.fps.toFixed(1)} frames/s` : ""));
}

function startServerCamera() {
  stop();
  const mine = session;
  view.hidden = true;
  stream.hidden = false;
  stream.src = "v1/camera/stream.mjpg";
  $("stop").disabled = false;
  say("This device's camera: connecting\u2026");
  poller = setInterval(() => pollServerCamera(mine).catch((error) => say(error.message, true)), 500);
}

async function analyzePhoto() {
  const file = $("photo").files[0];
  if (!file) return;
  stop();
  say(`Analysing ${file.name}\u2026`);
  try {
    const [result, picture] = await Promise.all([analyze(file, file.type || "application/octet-stream"),
                                                 createImageBitmap(file)]);
    show(picture, result.width, result.height, result);
    say(`${file.name}: ${result.faces.length} face(s)`);
  } catch (error) {
    say(error.message, true);
  }
  $("photo").value = "";
}

$("start-camera").addEventListener("click", startCamera);
$("server-camera").addEventListener("click", startServerCamera);
$("photo").addEventListener("change", analyzePhoto);
$("stop").addEventListener("click", () => { stop(); say("Stopped."); });

fetch("healthz").then((response) => response.json()).then((health) => {
  $("about").textContent = `ferlite ${health.version}: ${health.file} (${health.backend}), detector ${health.detector}`;
  if (health.camera) {
    $("server-camera").hidden = false;
    startServerCamera();
  }
}).catch((error) => say(`Cannot reach the server: ${error.message}`, true));
