// The Jarvis panel. Plain JavaScript, no framework. Every URL is relative, so the page works
// at /panel/ and under Home Assistant's ingress prefix alike. Text from the server is only
// ever set with textContent, never as HTML.
'use strict';

const $ = (sel) => document.querySelector(sel);
const state = { csrf: null, conversation: null, entries: [], feed: null, feedRetry: null, pendingTimer: null };
window.jarvisPanel = state; // for tests: feed arrivals are timestamped here

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-jarvis-csrf': state.csrf || '' },
    body: JSON.stringify(body),
  };
  const response = await fetch('api/' + path, init);
  if (response.status === 401) { showLogin(); throw new Error('log in again'); }
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

// --- Access -------------------------------------------------------------------------------

async function start() {
  const info = await (await fetch('api/session', { cache: 'no-store' })).json();
  if (!info.authenticated) return showLogin();
  state.csrf = info.csrf;
  $('#mode').textContent = { ingress: 'through Home Assistant', open: 'no key configured', login: 'logged in' }[info.mode] || '';
  $('#logout').hidden = info.mode !== 'login';
  $('#login').hidden = true;
  $('#app').hidden = false;
  openFeed();
  refreshPending();
}

function showLogin() {
  clearTimeout(state.feedRetry);
  if (state.feed) { state.feed.onclose = null; state.feed.close(); }
  $('#app').hidden = true;
  $('#logout').hidden = true;
  $('#login').hidden = false;
  $('#key').focus();
}

$('#login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const key = $('#key');
  $('#login-error').textContent = '';
  const response = await fetch('api/login', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key: key.value }),
  });
  key.value = '';
  if (!response.ok) {
    let message = 'Login failed';
    try { message = (await response.json()).error; } catch (_) { /* keep */ }
    $('#login-error').textContent = message;
    return;
  }
  start();
});

$('#logout').addEventListener('click', async () => {
  try { await api('logout', {}); } catch (_) { /* gone anyway */ }
  showLogin();
});

// --- Tabs ---------------------------------------------------------------------------------

const tabs = [...document.querySelectorAll('[role=tab]')];
function select(tab) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
    document.getElementById(t.getAttribute('aria-controls')).hidden = !on;
  }
  tab.focus();
  if (tab.id === 'tab-health') loadHealth();
  if (tab.id === 'tab-models') loadModels();
}
for (const t of tabs) {
  t.addEventListener('click', () => select(t));
  t.addEventListener('keydown', (e) => {
    const i = tabs.indexOf(t);
    if (e.key === 'ArrowRight') select(tabs[(i + 1) % tabs.length]);
    if (e.key === 'ArrowLeft') select(tabs[(i + tabs.length - 1) % tabs.length]);
  });
}

// --- Activity -----------------------------------------------------------------------------

// Live streams come over a WebSocket, message by message: through Home Assistant's ingress an
// event stream can stand still (it is compressed there before HA 2026.1).
function socketUrl(path) {
  const url = new URL(path + '?csrf=' + encodeURIComponent(state.csrf || ''), location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url;
}

// Opens `path` and calls handlers[event](data) for each message; `onclose` when it ends.
function follow(path, handlers, onopen, onclose) {
  const socket = new WebSocket(socketUrl(path));
  socket.onopen = () => onopen && onopen();
  socket.onmessage = (e) => {
    const { event, data } = JSON.parse(e.data);
    if (handlers[event]) handlers[event](data);
  };
  socket.onclose = () => onclose && onclose();
  return socket;
}

function openFeed() {
  if (state.feed) { state.feed.onclose = null; state.feed.close(); }
  const reload = (entries) => { state.entries = entries; renderFeed(); };
  state.feed = follow('api/feed/socket', {
    snapshot: reload,
    resync: (entries) => { reload(entries); refreshPending(); },
    entry: (entry) => {
      entry.arrived = performance.timeOrigin + performance.now();
      state.entries.push(entry);
      if (state.entries.length > 500) state.entries.shift();
      renderFeed();
      refreshPending();
    },
  }, () => { $('#feed-state').textContent = 'live'; }, () => {
    $('#feed-state').textContent = 'reconnecting…';
    clearTimeout(state.feedRetry);
    state.feedRetry = setTimeout(openFeed, 2000);
  });
}

function kindOf(entry) {
  if (entry.frigate) return 'frigate';
  if (entry.brain && entry.brain.event_type === 'action') return entry.brain.decision === 'refused' ? 'refused' : 'action';
  return 'command';
}

function describe(entry) {
  if (entry.frigate) {
    const f = entry.frigate;
    return [f.camera || 'camera', `${f.sub_label || f.label || 'object'}${f.zones && f.zones.length ? ' in ' + f.zones.join(', ') : ''}`];
  }
  const b = entry.brain;
  if (b.event_type === 'action') {
    const task = b.task ? ` (task ${b.task.status || ''}${b.task.exitstatus ? ': ' + b.task.exitstatus : ''})` : '';
    return [`${b.action} ${b.guest || b.vmid}`, b.reply + task];
  }
  return [b.text, b.reply];
}

function renderFeed() {
  const kind = $('#filter-kind').value;
  const words = $('#filter-text').value.trim().toLowerCase();
  const list = $('#feed');
  const items = [];
  for (const entry of state.entries.slice().reverse()) {
    const k = kindOf(entry);
    if (kind !== 'all' && kind !== k && !(kind === 'action' && k === 'refused')) continue;
    const [said, reply] = describe(entry);
    if (words && !`${said} ${reply}`.toLowerCase().includes(words)) continue;
    const b = entry.brain || {};
    const when = new Date(entry.at_ms);
    items.push(el('li', { 'data-id': entry.id, class: 'entry ' + k },
      el('time', { datetime: when.toISOString(), text: when.toLocaleTimeString() }),
      el('span', { class: 'badge', text: b.channel || 'frigate' }),
      b.decision ? el('span', { class: 'badge ' + b.decision, text: b.decision.replace('_', ' ') }) : null,
      el('span', { class: 'said', text: said }),
      el('span', { class: 'reply', text: reply })));
  }
  list.replaceChildren(...items);
}
$('#filter-kind').addEventListener('change', renderFeed);
$('#filter-text').addEventListener('input', renderFeed);

async function refreshPending() {
  let waiting = [];
  try { waiting = await (await api('pending')).json(); } catch (_) { return; }
  const list = $('#pending');
  list.replaceChildren(...waiting.map((w) => {
    const what = `${w.action} ${w.guest}`;
    return el('li', { 'data-id': w.id },
      el('span', { class: 'badge', text: w.channel }),
      el('span', { text: w.question }),
      el('span', { class: 'muted', text: `${w.expires_in_secs} s left` }),
      el('button', { type: 'button', class: 'confirm', 'aria-label': `Confirm: ${what}`, text: 'Confirm', onclick: () => settle(w.id, true) }),
      el('button', { type: 'button', class: 'cancel', 'aria-label': `Cancel: ${what}`, text: 'Cancel', onclick: () => settle(w.id, false) }));
  }));
  $('#pending-none').hidden = waiting.length > 0;
  clearTimeout(state.pendingTimer);
  if (waiting.length) state.pendingTimer = setTimeout(refreshPending, 1000);
}

async function settle(id, confirm) {
  try {
    const reply = await (await api('confirm', { id, confirm })).json();
    addTurn({ said: confirm ? 'Confirm' : 'Cancel', reply: reply.reply });
  } catch (e) { $('#talk-error').textContent = e.message; }
  refreshPending();
}

// --- Talk ---------------------------------------------------------------------------------

function ms(v) { return v == null ? '–' : `${Math.round(v)} ms`; }

function addTurn(turn) {
  const li = el('li', { class: 'turn' },
    turn.said != null ? el('span', { class: 'said', text: turn.said }) : null,
    el('span', { class: 'reply', text: turn.reply || '' }),
    el('span', { class: 'timing', text: '' }));
  $('#turns').prepend(li);
  return li;
}

function showTimings(li, t) {
  const parts = [];
  if (t.stt != null) parts.push(`end of speech → transcript ${ms(t.stt)}`);
  parts.push(`→ reply ${ms(t.reply)}`);
  if (t.audio !== undefined) parts.push(`→ first audio ${ms(t.audio)}`);
  li.querySelector('.timing').textContent = parts.join(' ');
}

async function speakReply(text) {
  if (!$('#speak-replies').checked || !text) return null;
  const started = performance.now();
  try {
    const wav = await (await api('speak', { text })).blob();
    const audio = new Audio(URL.createObjectURL(wav));
    audio.play().catch(() => { /* autoplay refused */ });
    return performance.now() - started;
  } catch (_) { return null; }
}

async function handleReply(li, reply, timings) {
  li.querySelector('.reply').textContent = reply.reply;
  state.conversation = reply.conversation_id;
  timings.reply = reply.reply_ms;
  showTimings(li, timings);
  timings.audio = await speakReply(reply.reply);
  showTimings(li, timings);
}

$('#talk-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = $('#talk-text');
  const text = input.value.trim();
  if (!text) return;
  $('#talk-error').textContent = '';
  const li = addTurn({ said: text, reply: '…' });
  try {
    const reply = await (await api('command', { text, conversation_id: state.conversation })).json();
    input.value = '';
    await handleReply(li, reply, {});
  } catch (err) { li.querySelector('.reply').textContent = ''; $('#talk-error').textContent = err.message; }
});

const mic = { socket: null, context: null, stream: null, stopped: 0, li: null };

async function startTalking() {
  $('#talk-error').textContent = '';
  const url = new URL('api/listen?csrf=' + encodeURIComponent(state.csrf || ''), location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  try {
    mic.stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
  } catch (err) { $('#talk-error').textContent = 'No microphone: ' + err.message; return; }
  const socket = new WebSocket(url);
  socket.binaryType = 'arraybuffer';
  mic.socket = socket;
  mic.li = addTurn({ said: '…', reply: '' });
  mic.timings = {};
  mic.context = new AudioContext({ sampleRate: 16000 });
  const source = mic.context.createMediaStreamSource(mic.stream);
  const node = mic.context.createScriptProcessor(2048, 1, 1);
  node.onaudioprocess = (e) => {
    const f = e.inputBuffer.getChannelData(0);
    const pcm = new Int16Array(f.length);
    for (let i = 0; i < f.length; i++) pcm[i] = Math.max(-1, Math.min(1, f[i])) * 32767;
    if (socket.readyState === WebSocket.OPEN && !mic.stopped) socket.send(pcm.buffer);
  };
  source.connect(node);
  node.connect(mic.context.destination);
  mic.stopped = 0;
  socket.onmessage = async (e) => {
    const msg = JSON.parse(e.data);
    if (msg.type === 'transcript') {
      mic.li.querySelector('.said').textContent = msg.text;
      mic.timings.stt = mic.stopped ? performance.now() - mic.stopped : 0;
      mic.transcribed = performance.now();
      stopTalking(false);
    } else if (msg.type === 'reply') {
      msg.reply_ms = performance.now() - mic.transcribed;
      await handleReply(mic.li, msg, mic.timings);
    } else if (msg.type === 'error') {
      $('#talk-error').textContent = msg.message;
      stopTalking(false);
    }
  };
  socket.onclose = () => stopTalking(false);
  $('#ptt').setAttribute('aria-pressed', 'true');
  $('#ptt').textContent = 'Stop talking';
}

function stopTalking(send) {
  if (send && mic.socket && mic.socket.readyState === WebSocket.OPEN && !mic.stopped) {
    mic.socket.send(JSON.stringify({ type: 'stop' }));
  }
  if (!mic.stopped) mic.stopped = performance.now();
  if (mic.context) { mic.context.close(); mic.context = null; }
  if (mic.stream) { mic.stream.getTracks().forEach((t) => t.stop()); mic.stream = null; }
  $('#ptt').setAttribute('aria-pressed', 'false');
  $('#ptt').textContent = 'Push to talk';
}

$('#ptt').addEventListener('click', () => {
  if ($('#ptt').getAttribute('aria-pressed') === 'true') stopTalking(true);
  else startTalking();
});

// --- Health -------------------------------------------------------------------------------

async function loadHealth() {
  const list = $('#health-list');
  let health;
  try { health = await (await fetch('../health', { cache: 'no-store' })).json(); } catch (e) { list.replaceChildren(el('dt', { text: 'Jarvis' }), el('dd', { text: 'unreachable' })); return; }
  const rows = [['Version', `${health.version} (${health.instance})`]];
  for (const s of health.services) rows.push([s.name, s.ready ? 'ready' : `off: ${s.reason || ''}`]);
  const px = health.proxmox;
  rows.push(['Proxmox', !px ? 'not configured' : px.reachable
    ? `reachable${px.node_url ? ' at ' + px.node_url : ''}${px.last_success_secs_ago != null ? `, answered ${px.last_success_secs_ago} s ago` : ''}`
    : `unreachable${px.last_error ? ': ' + px.last_error : ''}`]);
  rows.push(['MQTT', health.mqtt ? (health.mqtt.connected ? 'connected' : `disconnected ${health.mqtt.last_error || ''}`) : 'off']);
  rows.push(['Frigate', health.frigate.enabled ? health.frigate.availability : 'off']);
  rows.push(['Event memory', `${health.events.events} events${health.events.problem ? ' — ' + health.events.problem : ''}`]);
  rows.push(['Read-only', String(health.brain.read_only)]);
  list.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
  loadLatency();
}
$('#health-refresh').addEventListener('click', loadHealth);

const BOUNDS = [25, 50, 100, 200, 400, 800, 1600, 3200, 6400];
const NAMES = { speech_to_text: 'Speech to text', first_audio: 'First TTS audio', intent: 'Intents' };

async function loadLatency() {
  let series;
  try { series = await (await api('latency')).json(); } catch (_) { return; }
  const NS = 'http://www.w3.org/2000/svg';
  $('#latency').replaceChildren(...series.map((s) => {
    const max = Math.max(1, ...s.buckets);
    const svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('viewBox', '0 0 200 100');
    svg.setAttribute('role', 'img');
    const title = `${NAMES[s.series]}: ${s.count} samples, median ${ms(s.p50_ms)}, 95th percentile ${ms(s.p95_ms)}`;
    svg.setAttribute('aria-label', title);
    const w = 200 / s.buckets.length;
    s.buckets.forEach((n, i) => {
      const h = (n / max) * 80;
      const r = document.createElementNS(NS, 'rect');
      r.setAttribute('x', i * w + 1); r.setAttribute('y', 85 - h);
      r.setAttribute('width', w - 2); r.setAttribute('height', h);
      const t = document.createElementNS(NS, 'text');
      t.setAttribute('x', i * w + 1); t.setAttribute('y', 97);
      t.textContent = i < BOUNDS.length ? (BOUNDS[i] >= 1000 ? BOUNDS[i] / 1000 + 's' : BOUNDS[i]) : '>';
      svg.append(r, t);
    });
    return el('figure', {}, svg, el('figcaption', { text: title }));
  }));
}

// --- Models -------------------------------------------------------------------------------

function size(bytes) {
  if (bytes == null) return '?';
  return bytes > 1e9 ? (bytes / 1e9).toFixed(1) + ' GB' : (bytes / 1e6).toFixed(1) + ' MB';
}

async function loadModels() {
  let models;
  try { models = await (await api('models')).json(); } catch (e) { $('#models-error').textContent = e.message; return; }
  const rows = models.map((m) => {
    const actions = el('td', {});
    if (m.state !== 'installed') actions.append(el('button', { type: 'button', class: 'pull', 'aria-label': `Pull ${m.name}`, text: 'Pull', onclick: () => pull(m.name) }));
    if (m.state !== 'missing' && !m.loaded) actions.append(el('button', { type: 'button', class: 'remove', 'aria-label': `Remove ${m.name}`, text: 'Remove', onclick: () => remove(m.name) }));
    if (m.kind === 'piper' && m.state === 'installed') actions.append(el('button', { type: 'button', class: 'preview', 'aria-label': `Preview voice ${m.name}`, text: 'Preview', onclick: () => preview(m.name) }));
    return el('tr', { 'data-name': m.name },
      el('th', { scope: 'row', text: m.name }), el('td', { text: m.kind }), el('td', { text: size(m.size) }),
      el('td', { text: m.state + (m.loaded ? ', loaded' : '') }), actions);
  });
  $('#models-table tbody').replaceChildren(...rows);
}

async function pull(name) {
  $('#models-error').textContent = '';
  try { await api('models/pull', { name }); } catch (e) { $('#models-error').textContent = e.message; return; }
  $('#pull-status').hidden = false;
  $('#pull-label').textContent = `Pulling ${name}`;
  const progress = follow('api/models/progress/socket', { progress: (p) => {
    const bar = $('#pull-progress');
    if (p.total) { bar.max = p.total; bar.value = p.done; } else bar.removeAttribute('value');
    $('#pull-text').textContent = `${p.file}: ${size(p.done)}${p.total ? ' of ' + size(p.total) : ''}`;
    if (p.state !== 'running') {
      progress.close();
      $('#pull-text').textContent = p.state === 'done' ? `${p.name} installed` : `${p.name} failed: ${p.message}`;
      if (p.state === 'done') { bar.max = 1; bar.value = 1; }
      loadModels();
    }
  } });
}

async function remove(name) {
  try { await api('models/remove', { name }); } catch (e) { $('#models-error').textContent = e.message; }
  loadModels();
}

async function preview(voice) {
  try {
    const wav = await (await api('voices/preview', { voice })).blob();
    new Audio(URL.createObjectURL(wav)).play().catch(() => {});
  } catch (e) { $('#models-error').textContent = e.message; }
}

start().catch((e) => { $('#login-error').textContent = 'Jarvis is unreachable: ' + e.message; showLogin(); });
