"use strict";
// UniVoice browser demo: the REST API, the microphone, the streaming protocol (docs/protocol.md) and
// playback of the translated speech. Plain JavaScript, no build step, no dependencies.

const LANGUAGES = { en: "English", es: "Spanish", fr: "French", de: "German", it: "Italian", pt: "Portuguese" };
const STREAM_RATE = 16000; // what we send; the gateway would resample other rates, but 16 kHz is its native rate
const FRAME_SAMPLES = STREAM_RATE / 50; // 20 ms frames
const ENROL_SECONDS = 8;
const PLAYBACK_LEAD_S = 0.05; // schedule a little ahead so the first chunk does not start late
const METRIC_KEYS = [
  "stt_ms", "translation_first_piece_ms", "translation_ms", "first_clause_synthesis_ms", "transcript_after_end_ms",
  "translation_after_end_ms", "first_audio_after_end_ms", "audio_end_after_end_ms",
];

// The capture tap runs on the audio thread; it is loaded from a Blob so the demo stays one script file.
// It hands over ~20 ms blocks rather than every 128-sample quantum, to keep messages few.
const TAP_SOURCE = `
class UniVoiceTap extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(Math.round(sampleRate / 50));
    this.filled = 0;
  }
  process(inputs) {
    const input = inputs[0][0];
    for (let offset = 0; input && offset < input.length;) {
      const n = Math.min(input.length - offset, this.block.length - this.filled);
      this.block.set(input.subarray(offset, offset + n), this.filled);
      this.filled += n;
      offset += n;
      if (this.filled === this.block.length) {
        this.port.postMessage(this.block.slice());
        this.filled = 0;
      }
    }
    return true;
  }
}
registerProcessor("univoice-tap", UniVoiceTap);
`;

const $ = (id) => document.getElementById(id);

const state = {
  tokens: null, // kept in memory only: a reload asks for the password again, nothing lingers in storage
  username: null,
  refreshTimer: null,
  context: null,
  tapLoaded: null,
  recording: false,
  socket: null,
  capture: null,
  streaming: false,
  playAt: 0,
  outputRate: 24000,
  utterances: new Map(), // utterance_id -> table row
};

// ---- messages to the person --------------------------------------------------------------------

function say(text) {
  $("status").textContent = text;
}

function showError(error) {
  const alert = $("alert");
  alert.textContent = error instanceof Error ? error.message : String(error);
  alert.hidden = false;
}

function clearError() {
  $("alert").hidden = true;
  $("alert").textContent = "";
}

function logEvent(kind, code, message) {
  const item = document.createElement("li");
  item.className = kind;
  item.textContent = `${kind}: ${code} — ${message}`;
  $("events").prepend(item);
}

// Every button handler goes through here, so any failure is shown instead of lost in the console.
function guarded(handler) {
  return async (event) => {
    event.preventDefault();
    clearError();
    try {
      await handler(event);
    } catch (error) {
      showError(error);
    } finally {
      render();
    }
  };
}

function render() {
  const loggedIn = state.tokens !== null;
  const busy = state.recording || state.socket !== null;
  $("login").hidden = loggedIn;
  $("signup").hidden = loggedIn;
  $("logout").hidden = !loggedIn;
  $("username").disabled = loggedIn;
  $("password").disabled = loggedIn;
  $("who").hidden = !loggedIn;
  $("who").textContent = loggedIn ? `Signed in as ${state.username}.` : "";
  $("enrol").disabled = !loggedIn || busy;
  $("profile").disabled = !loggedIn || busy;
  $("source").disabled = busy;
  $("target").disabled = busy;
  $("start").disabled = !loggedIn || busy;
  $("stop").disabled = !state.streaming;
}

// ---- REST ----------------------------------------------------------------------------------------

async function api(path, { method = "GET", json, body } = {}) {
  const headers = {};
  if (state.tokens) headers.Authorization = `Bearer ${state.tokens.access_token}`;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  const response = await fetch(path, { method, headers, body });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // not JSON (e.g. a proxy's error page): fall back to the HTTP status below
  }
  if (!response.ok) {
    throw new Error(data?.message || `${response.status} ${response.statusText}`);
  }
  return data;
}

function credentials() {
  const form = $("login-form");
  if (!form.reportValidity()) throw new Error("Enter a username (3+ characters) and a password.");
  return { username: $("username").value.trim(), password: $("password").value };
}

async function logIn() {
  const { username, password } = credentials();
  const tokens = await api("/v1/auth/token", { method: "POST", body: new URLSearchParams({ username, password }) });
  state.username = username;
  setTokens(tokens);
  $("password").value = "";
  await loadProfiles();
  say("Logged in. Enrol your voice, or pick languages and start speaking.");
}

async function signUp() {
  const { username, password } = credentials();
  await api("/v1/auth/signup", { method: "POST", json: { username, password } });
  await logIn();
}

async function logOut() {
  stopStream();
  const refresh = state.tokens?.refresh_token;
  try {
    await api("/v1/auth/logout", { method: "POST", json: { refresh_token: refresh } });
  } finally {
    clearTimeout(state.refreshTimer);
    state.tokens = null;
    state.username = null;
    fillProfiles([]);
    say("Logged out.");
  }
}

function setTokens(tokens) {
  state.tokens = tokens;
  clearTimeout(state.refreshTimer);
  // Refresh a minute early: the stream is closed with token_expired if the new token comes too late.
  const delay = Math.max(10, tokens.expires_in - 60) * 1000;
  state.refreshTimer = setTimeout(() => refreshTokens().catch(showError), delay);
}

async function refreshTokens() {
  const tokens = await api("/v1/auth/refresh", { method: "POST", json: { refresh_token: state.tokens.refresh_token } });
  setTokens(tokens);
  if (state.socket?.readyState === WebSocket.OPEN) {
    state.socket.send(JSON.stringify({ type: "auth", token: tokens.access_token }));
  }
}

function fillProfiles(profiles, selected = "") {
  const select = $("profile");
  select.replaceChildren(new Option("Default voice (no profile)", ""));
  for (const profile of profiles) {
    const label = `${profile.name} (${profile.speech_seconds.toFixed(1)} s of speech)`;
    select.add(new Option(label, profile.id, false, profile.id === selected));
  }
}

async function loadProfiles(selected = "") {
  fillProfiles(await api("/v1/profiles"), selected);
}

// ---- microphone ----------------------------------------------------------------------------------

// One AudioContext for capture and playback, created on a click (browsers only let audio start then).
async function audioContext() {
  if (!state.context) state.context = new AudioContext({ latencyHint: "interactive" });
  await state.context.resume();
  if (!state.tapLoaded) {
    const url = URL.createObjectURL(new Blob([TAP_SOURCE], { type: "text/javascript" }));
    state.tapLoaded = state.context.audioWorklet.addModule(url).finally(() => URL.revokeObjectURL(url));
  }
  await state.tapLoaded;
  return state.context;
}

// Averages the input over each output sample's span: a crude low-pass, enough to keep speech free of
// aliasing when going from 44.1/48 kHz down to 16 kHz. Keeps its fractional position across blocks.
class Downsampler {
  constructor(inputRate, outputRate) {
    this.step = inputRate / outputRate;
    this.pending = new Float32Array(0);
    this.position = 0;
  }

  push(block) {
    const data = new Float32Array(this.pending.length + block.length);
    data.set(this.pending);
    data.set(block, this.pending.length);
    const out = new Float32Array(Math.floor((data.length - this.position) / this.step) + 1);
    let count = 0;
    let position = this.position;
    while (position + this.step <= data.length) {
      const start = Math.floor(position);
      const end = Math.max(start + 1, Math.floor(position + this.step));
      let sum = 0;
      for (let i = start; i < end; i++) sum += data[i];
      out[count++] = sum / (end - start);
      position += this.step;
    }
    const consumed = Math.floor(position);
    this.pending = data.slice(consumed);
    this.position = position - consumed;
    return out.subarray(0, count);
  }
}

// Starts the microphone; `onSamples` gets 16 kHz mono float blocks. Returns an object with stop().
async function startCapture(onSamples) {
  const context = await audioContext();
  const media = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  });
  const source = context.createMediaStreamSource(media);
  // channelCount 1 "explicit": Web Audio mixes a stereo microphone down to mono for us.
  const tap = new AudioWorkletNode(context, "univoice-tap", { channelCount: 1, channelCountMode: "explicit" });
  const downsampler = new Downsampler(context.sampleRate, STREAM_RATE);
  tap.port.onmessage = (message) => onSamples(downsampler.push(message.data));
  source.connect(tap);
  // The tap writes silence; connecting it to the output is what keeps the audio thread calling it.
  tap.connect(context.destination);
  return {
    stop() {
      tap.port.onmessage = null;
      source.disconnect();
      tap.disconnect();
      media.getTracks().forEach((track) => track.stop());
    },
  };
}

function floatToPcm16(samples) {
  const pcm = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    pcm[i] = s < 0 ? s * 0x8000 : s * 0x7fff;
  }
  return pcm;
}

function encodeWav(samples, rate) {
  const pcm = floatToPcm16(samples);
  const view = new DataView(new ArrayBuffer(44 + pcm.length * 2));
  const text = (offset, value) => [...value].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF");
  view.setUint32(4, 36 + pcm.length * 2, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true); // fmt chunk size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * 2, true); // bytes per second
  view.setUint16(32, 2, true); // bytes per frame
  view.setUint16(34, 16, true); // bits per sample
  text(36, "data");
  view.setUint32(40, pcm.length * 2, true);
  pcm.forEach((value, i) => view.setInt16(44 + i * 2, value, true));
  return view.buffer;
}

// ---- enrolment -----------------------------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function enrol() {
  if (!$("consent").checked) {
    throw new Error("Tick the consent box first: a voice profile is only made with the speaker's agreement.");
  }
  const name = $("profile-name").value.trim() || "My voice";
  const blocks = [];
  state.recording = true;
  render();
  let capture = null;
  try {
    capture = await startCapture((samples) => blocks.push(samples.slice()));
    for (let left = ENROL_SECONDS; left > 0; left--) {
      say(`Recording… keep talking (${left} s left).`);
      await sleep(1000);
    }
  } finally {
    capture?.stop();
    state.recording = false;
  }
  const samples = new Float32Array(blocks.reduce((n, block) => n + block.length, 0));
  blocks.reduce((offset, block) => (samples.set(block, offset), offset + block.length), 0);
  say("Analysing your voice…");
  const form = new FormData();
  form.append("file", new Blob([encodeWav(samples, STREAM_RATE)], { type: "audio/wav" }), "enrolment.wav");
  form.append("name", name);
  form.append("consent", "true");
  if (state.consentVersion) form.append("consent_version", state.consentVersion);
  const profile = await api("/v1/profiles", { method: "POST", body: form });
  await loadProfiles(profile.id);
  say(`Voice profile “${profile.name}” enrolled from ${profile.speech_seconds.toFixed(1)} s of speech.`);
}

// ---- streaming -----------------------------------------------------------------------------------

async function startStream() {
  // The microphone first: a permission prompt must not eat into the server's wait for the config message.
  let frame = new Float32Array(FRAME_SAMPLES);
  let filled = 0;
  state.capture = await startCapture((samples) => {
    if (!state.streaming) return;
    for (let offset = 0; offset < samples.length;) {
      const n = Math.min(samples.length - offset, FRAME_SAMPLES - filled);
      frame.set(samples.subarray(offset, offset + n), filled);
      filled += n;
      offset += n;
      if (filled === FRAME_SAMPLES) {
        state.socket.send(floatToPcm16(frame).buffer);
        frame = new Float32Array(FRAME_SAMPLES);
        filled = 0;
      }
    }
  });
  try {
    const session = await api("/v1/sessions", {
      method: "POST",
      json: {
        source_language: $("source").value,
        target_language: $("target").value,
        voice_profile_id: $("profile").value || null,
      },
    });
    openSocket(session.id);
  } catch (error) {
    stopCapture();
    throw error;
  }
  say("Connecting…");
}

function openSocket(sessionId) {
  const url = new URL(`/v1/sessions/${encodeURIComponent(sessionId)}/stream`, location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  state.socket = socket;
  socket.onopen = () => {
    // Browsers cannot set an Authorization header on a WebSocket: the token goes in the config.
    socket.send(JSON.stringify({
      type: "config",
      protocol: 1,
      token: state.tokens.access_token,
      audio: { encoding: "pcm16", sample_rate: STREAM_RATE, channels: 1 },
    }));
  };
  socket.onmessage = (message) => {
    if (typeof message.data === "string") onEvent(JSON.parse(message.data));
    else playChunk(message.data);
  };
  socket.onclose = (event) => {
    stopCapture();
    state.socket = null;
    state.streaming = false;
    if (event.code === 1000) say("The stream has ended.");
    else say(`The stream closed (code ${event.code}${event.reason ? `: ${event.reason}` : ""}).`);
    render();
  };
}

function stopCapture() {
  state.capture?.stop();
  state.capture = null;
}

function stopStream() {
  stopCapture();
  state.streaming = false;
  if (state.socket?.readyState === WebSocket.OPEN) {
    // The server answers what it already heard, sends `stopped`, then closes.
    state.socket.send(JSON.stringify({ type: "stop" }));
    say("Finishing the last utterance…");
  }
}

function utteranceRow(id) {
  let row = state.utterances.get(id);
  if (!row) {
    row = $("utterances").tBodies[0].insertRow();
    row.dataset.utteranceId = id;
    row.insertCell().textContent = String(state.utterances.size + 1);
    row.insertCell().className = "transcript";
    row.insertCell().className = "translation";
    state.utterances.set(id, row);
  }
  return row;
}

// Only events that carry text get a table row, so an utterance that came to nothing leaves no blank line.
const ROW_EVENTS = new Set(["partial_transcript", "transcript", "translation", "metrics"]);

function onEvent(event) {
  const row = ROW_EVENTS.has(event.type) ? utteranceRow(event.utterance_id) : null;
  switch (event.type) {
    case "ready":
      state.streaming = true;
      say(`Listening: speak ${LANGUAGES[event.source_language] ?? event.source_language}, ` +
          `heard in ${LANGUAGES[event.target_language] ?? event.target_language} (voice ${event.voice}).`);
      render();
      break;
    case "vad":
      if (event.state === "start") say("Hearing you…");
      break;
    case "partial_transcript":
      row.cells[1].textContent = event.text;
      row.cells[1].classList.add("partial");
      $("partial").textContent = event.text;
      break;
    case "transcript":
      row.cells[1].textContent = event.text;
      row.cells[1].classList.remove("partial");
      row.cells[1].classList.add("final");
      $("partial").textContent = "";
      break;
    case "translation":
      row.cells[2].textContent = event.text;
      if (event.translation_fallback) {
        row.cells[2].title = `the translation model's output was refused (${event.fallback_reason}); ` +
          `${event.translation_fallback} translated this one`;
        logEvent("warning", "translation_fallback", row.cells[2].title);
      }
      break;
    case "audio_start":
      state.outputRate = event.sample_rate;
      break;
    case "metrics":
      addMetrics(row, event.timings_ms);
      break;
    case "warning":
      logEvent("warning", event.code, event.message);
      break;
    case "error":
      logEvent("error", event.code, event.message);
      showError(event.message);
      break;
    case "stopped":
      say("Stopped.");
      break;
    default:
      break; // the protocol lets servers add events; ignore what we do not know
  }
}

function addMetrics(utterance, timings) {
  const row = $("metrics").tBodies[0].insertRow();
  row.insertCell().textContent = utterance.cells[0].textContent;
  for (const key of METRIC_KEYS) {
    const cell = row.insertCell();
    cell.textContent = key in timings ? Math.round(timings[key]).toString() : "–";
  }
}

// Binary frames: a 4-byte big-endian sequence number, then little-endian PCM16 mono.
function playChunk(buffer) {
  const view = new DataView(buffer, 4);
  const samples = new Float32Array(view.byteLength / 2);
  for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(i * 2, true) / 0x8000;
  const context = state.context;
  const audio = context.createBuffer(1, samples.length, state.outputRate);
  audio.copyToChannel(samples, 0);
  const node = context.createBufferSource();
  node.buffer = audio;
  node.connect(context.destination);
  // Back to back: each chunk starts where the previous one ends, unless we have fallen behind.
  const at = Math.max(state.playAt, context.currentTime + PLAYBACK_LEAD_S);
  node.start(at);
  state.playAt = at + audio.duration;
  node.onended = () => {
    const player = $("player");
    player.dataset.audioChunks = String(Number(player.dataset.audioChunks) + 1);
    const seconds = Number(player.dataset.audioSeconds) + audio.duration;
    player.dataset.audioSeconds = seconds.toFixed(2);
    $("played").textContent = seconds.toFixed(1);
  };
}

// ---- wiring --------------------------------------------------------------------------------------

// The pairs the gateway translates (GET /v1/languages): a target is offered only where the source has it.
let PAIRS = [];

function fillTargets(chosen) {
  const select = $("target");
  const keep = chosen ?? select.value;
  select.replaceChildren();
  for (const pair of PAIRS.filter((p) => p.source === $("source").value)) {
    const label = `${LANGUAGES[pair.target] ?? pair.target} (${pair.engine})`;
    select.add(new Option(label, pair.target, false, pair.target === keep));
  }
}

async function loadLanguages() {
  const response = await fetch("/v1/languages");
  PAIRS = (await response.json()).pairs;
  const sources = [...new Set(PAIRS.map((p) => p.source))];
  for (const code of sources) $("source").add(new Option(LANGUAGES[code] ?? code, code, false, code === "es"));
  fillTargets("en");
}

async function loadConsent() {
  // The text the speaker agrees to, and its version (sent with the enrolment, kept in its audit event).
  const consent = await (await fetch("/v1/profiles/consent")).json();
  $("consent-text").textContent = consent.text;
  state.consentVersion = consent.version;
}

$("source").addEventListener("change", () => fillTargets());
loadLanguages();
loadConsent();
$("login-form").addEventListener("submit", guarded(logIn));
$("signup").addEventListener("click", guarded(signUp));
$("logout").addEventListener("click", guarded(logOut));
$("enrol").addEventListener("click", guarded(enrol));
$("start").addEventListener("click", guarded(startStream));
$("stop").addEventListener("click", guarded(stopStream));
render();
