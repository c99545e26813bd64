// moodcast's page: polls the daemon's JSON API and draws the charts on plain canvases (no library, no CDN).
"use strict";

// The overlay's colours (device/const.py EMOTION_COLOURS, as RGB).
const COLOURS = {
  angry: "#e62828", disgust: "#28aa28", fear: "#aa3cb4", happy: "#ffd700",
  sad: "#1e78dc", surprise: "#ff8c00", neutral: "#00c8dc",
};
const colour = (label) => COLOURS[label] || "#969696";
let info = { labels: [], feedback: false, mood_window_s: 60 };
let pickedFace = "";  // the face on the "Emotion scores" chart
let userPicked = false;  // picked in its menu: kept while its series lasts, else the newest face in view
const notes = new Map();  // face id -> [text, until ms]: a correction's answer, kept across refreshes
const NOTE_MS = 8000;

async function getJson(path) {
  const response = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function prepare(canvas) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  return ctx;
}

// Lines of values 0..1 over time: series is [[t, [v per label]], ...].
function lineChart(canvas, labels, series, spanS) {
  const ctx = prepare(canvas);
  const w = canvas.width, h = canvas.height, pad = 24;
  ctx.strokeStyle = "#3a4048";
  ctx.fillStyle = "#9aa0a6";
  ctx.font = "11px system-ui";
  for (const v of [0, 0.5, 1]) {
    const y = h - pad - v * (h - 2 * pad);
    ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(w - 4, y); ctx.stroke();
    ctx.fillText(v.toFixed(1), 2, y + 4);
  }
  if (!series.length) { canvas.dataset.points = "0"; return; }
  const end = series[series.length - 1][0], start = end - spanS;
  const x = (t) => pad + ((t - start) / spanS) * (w - pad - 4);
  const y = (v) => h - pad - v * (h - 2 * pad);
  labels.forEach((label, i) => {
    ctx.strokeStyle = colour(label);
    ctx.lineWidth = 2;
    ctx.beginPath();
    series.forEach(([t, values], n) => (n ? ctx.lineTo(x(t), y(values[i])) : ctx.moveTo(x(t), y(values[i]))));
    ctx.stroke();
  });
  ctx.fillStyle = "#9aa0a6";
  ctx.fillText(`last ${Math.round(spanS / 60)} min`, w - 70, h - 6);
  canvas.dataset.points = String(series.length);
}

function card(face) {
  const div = document.createElement("div");
  div.className = "card";
  div.dataset.faceId = face.id;
  div.dataset.emotion = face.emotion;
  div.style.borderLeftColor = colour(face.emotion);
  const seconds = Math.round(face.on_screen_s);
  const onScreen = seconds >= 60 ? `${Math.floor(seconds / 60)} min ${seconds % 60} s` : `${seconds} s`;
  div.innerHTML = `<div class="meta">face #${face.id}</div>
    <div class="emotion"></div>
    <div class="meta">${Math.round(face.confidence * 100)}% · on screen ${onScreen}</div>`;
  div.querySelector(".emotion").textContent = face.emotion;
  if (info.feedback) {
    const select = document.createElement("select");
    select.setAttribute("aria-label", `right label for face ${face.id}`);
    select.innerHTML = `<option value="">Wrong? pick the right one</option>` +
      info.labels.filter((l) => l !== face.emotion).map((l) => `<option value="${l}">${l}</option>`).join("");
    select.addEventListener("change", () => sendFeedback(face.id, select, div));
    div.appendChild(select);
  }
  const note = notes.get(face.id);
  if (note && note[1] > Date.now()) addNote(div, note[0]);
  return div;
}

function addNote(div, text) {
  const note = document.createElement("div");
  note.className = "meta feedback-result";
  note.textContent = text;
  div.appendChild(note);
}

async function sendFeedback(faceId, select, div) {
  const label = select.value;
  if (!label) return;
  let text;
  try {
    const response = await fetch("/api/v1/feedback", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ face_id: faceId, label }),
    });
    const answer = await response.json();
    text = response.ok ? `saved as ${answer.label}, thank you` : answer.error;
  } catch (err) {
    text = `not saved: ${err.message}`;
  }
  notes.set(faceId, [text, Date.now() + NOTE_MS]);
  addNote(div, text);
  // done: let go of the menu, or refreshFaces keeps skipping the cards as a correction in progress
  select.value = "";
  select.blur();
}

async function refreshFaces() {
  const data = await getJson("/api/v1/faces");
  const box = document.getElementById("faces");
  const focused = box.contains(document.activeElement);  // keep a half-made correction
  if (!focused) {
    box.replaceChildren(...data.faces.map(card));
    if (!data.faces.length) box.innerHTML = `<p class="empty">No face in view.</p>`;
  }
  const pick = document.getElementById("face-pick");
  const ids = Object.keys(data.series);
  const inView = data.faces.map((f) => String(f.id)).filter((id) => ids.includes(id));
  const keep = ids.includes(pickedFace) && (userPicked || inView.includes(pickedFace));
  if (!keep) {
    // the charted face has left (or its series ended): follow the newest face in view
    userPicked = false;
    const newest = inView.length ? inView : ids;
    pickedFace = newest.length ? newest.reduce((a, b) => (Number(b) > Number(a) ? b : a)) : "";
  }
  pick.innerHTML = ids.map((id) => `<option value="${id}"${id === pickedFace ? " selected" : ""}>face #${id}</option>`).join("");
  lineChart(document.getElementById("face-chart"), data.labels, pickedFace ? data.series[pickedFace] : [], 300);
}

async function refreshMood() {
  const data = await getJson("/api/v1/mood");
  document.getElementById("mood-now").textContent =
    `room mood: ${data.dominant || "–"}` + (data.dominant ? ` (${Math.round(data.shares[data.dominant] * 100)}%)` : "");
  document.getElementById("mood-window").textContent = `(share of each emotion across faces, over ${data.window_s} s)`;
  lineChart(document.getElementById("mood-chart"), data.labels, data.series.map(([t, , s]) => [t, s]), 300);
}

async function refreshHistory() {
  const data = await getJson("/api/v1/history?hours=24");
  const canvas = document.getElementById("history-chart");
  const ctx = prepare(canvas);
  const w = canvas.width, h = canvas.height, pad = 20;
  const end = Math.ceil(Date.now() / 1000 / data.bucket_s) * data.bucket_s, start = end - data.hours * 3600;
  const slot = (w - 2 * pad) / ((end - start) / data.bucket_s);
  const maxFaces = Math.max(1, ...data.buckets.map((b) => b.faces));
  for (const bucket of data.buckets) {
    const x = pad + ((bucket.start - start) / data.bucket_s) * slot;
    let y = h - pad;
    for (const label of data.labels) {
      const height = bucket.shares[label] * (h - 2 * pad);
      ctx.fillStyle = colour(label);
      ctx.fillRect(x, y - height, Math.max(slot, 1), height);
      y -= height;
    }
  }
  ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 1.5; ctx.beginPath();
  data.buckets.forEach((b, n) => {
    const x = pad + ((b.start - start) / data.bucket_s + 0.5) * slot, y = h - pad - (b.faces / maxFaces) * (h - 2 * pad);
    n ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
  });
  ctx.stroke();
  ctx.fillStyle = "#9aa0a6"; ctx.font = "11px system-ui";
  ctx.fillText("24 h ago", pad, h - 4); ctx.fillText("now", w - pad - 20, h - 4);
  canvas.dataset.buckets = String(data.buckets.length);
  const n = data.buckets.length, plural = (k, word) => `${k} ${word}${k === 1 ? "" : "s"}`;
  document.getElementById("history-note").textContent = n
    ? `${plural(n, "five-minute period")} with faces; at most ${plural(maxFaces, "face")} in one`
    : "No faces in the last 24 hours.";
}

function legend() {
  document.getElementById("legend").innerHTML =
    info.labels.map((l) => `<span style="--c:${colour(l)}">${l}</span>`).join("");
}

function every(ms, task) {
  const run = () => task().catch((err) => console.warn(err.message)).finally(() => setTimeout(run, ms));
  run();
}

document.getElementById("face-pick").addEventListener("change", (e) => {
  pickedFace = e.target.value;
  userPicked = true;
  e.target.blur();
});
getJson("/api/v1/info").then((data) => {
  info = data;
  legend();
  every(1000, refreshFaces);
  every(1000, refreshMood);
  every(60000, refreshHistory);
}).catch((err) => console.warn(err.message));
