// bZapper dashboard: one module, no dependencies. Everything goes through the public HTTP API
// with the tenant API key the user typed (kept in sessionStorage). Data from the API is only
// ever put into the page as text (textContent, attribute values), never parsed as HTML.
//
// The other views (views.js: the tabs; campaigns.js; charts.js) are modules of their own. This
// one tells them about the session through document events: `bz:session` (signed in; its
// detail carries the helpers they share: `api`, `h`, `toast`, `fail`, formatting, the known
// numbers and pools), `bz:event` (every live event) and `bz:signout`.

const KEY_STORE = 'bzapper.apiKey';
const EVENT_TYPES = [
  'instance.qr', 'instance.connecting', 'instance.connected', 'instance.disconnected',
  'instance.health', 'message.received', 'message.status',
  'campaign.created', 'campaign.progress', 'campaign.paused', 'campaign.resumed',
  'campaign.canceled', 'campaign.finished',
];
const FEED_MAX = 200;
const SENT_MAX = 8;
/** How often a QR code is fetched again when no `instance.qr` event says so (a safety net). */
const QR_REFRESH_MS = 20000;
const STRATEGIES = [
  ['round_robin', 'round robin'],
  ['least_used', 'least used'],
  ['health_weighted', 'health weighted'],
];

const $ = (id) => document.getElementById(id);

/** Builds an element: `h('div', {class: 'x', onclick: f}, 'text', child)`. Strings become text nodes. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// ---------------------------------------------------------------- state

const state = {
  key: null,
  instances: new Map(),
  names: new Map(), // instance id -> name, kept after a number is deleted (for the feed)
  pools: [],
  webhooks: [],
  es: null,
  esOpenedOnce: false,
  esRetry: null,
  lastEventId: null,
  feed: [],
  filter: '',
  qr: new Map(), // instance id -> {img, url, inflight, again, timer, error}
  refresh: new Map(), // instance id -> {timer, inflight, again}
  sent: [], // [{id, to, text, status, instance_id, error, at}]
  statusSeen: new Map(), // message id -> latest status from events (an event may beat the 202)
  deliveriesOpen: new Set(),
  deliveries: new Map(), // webhook id -> items | 'loading' | Error
  tick: null,
  shown: 0, // cards shown of a large list (see renderInstances)
  renderTimer: null,
  lastRender: 0,
  reloadTimer: null,
};

// Above this many numbers the list is "large" (a gateway may hold 10,000): cards are shown a
// page at a time, renders are folded into one every RENDER_GAP_MS, and `instance.*` events
// update the number from the event itself, with one read of the whole list every RELOAD_MS,
// instead of one read per number (a restart brings 10,000 `instance.connected` at once).
const LARGE = 200;
const PAGE_CARDS = 200;
const RENDER_GAP_MS = 500;
const RELOAD_MS = 5000;

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API; resolves with the parsed JSON (or null), rejects with an ApiError. */
async function api(method, path, body, { key = state.key, accept, headers: extra } = {}) {
  const headers = { ...extra, Authorization: `Bearer ${key}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (accept) headers.Accept = accept;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, 'network', 'The gateway could not be reached.');
  }
  if (res.ok) {
    if (accept && !accept.includes('json')) return res;
    const text = await res.text();
    return text ? JSON.parse(text) : null;
  }
  let code = `http_${res.status}`;
  let message = `${res.status} ${res.statusText}`.trim();
  try {
    const j = await res.json();
    if (j && j.error) {
      code = j.error.code || code;
      message = j.error.message || message;
    }
  } catch (_) { /* not JSON */ }
  const err = new ApiError(res.status, code, message);
  if (res.status === 401 && key === state.key && state.key) {
    signOut('Your API key is no longer accepted. Sign in again.');
  }
  throw err;
}

function toast(message, kind = 'info') {
  const el = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
  $('toasts').append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 7000 : 3500);
}

function fail(what) {
  return (e) => {
    if (e instanceof ApiError && e.status === 401) return;
    toast(`${what}: ${e.message}${e.code && e.status ? ` (${e.code})` : ''}`, 'error');
  };
}

// ---------------------------------------------------------------- formatting

function fmtTime(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

function fmtShort(ts) {
  const d = new Date(ts);
  const today = new Date().toDateString() === d.toDateString();
  return today
    ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
}

/** A phone-number JID as the phone (`+55…`); any other JID as it is. */
function fmtChat(jid) {
  const m = /^(\d+)@s\.whatsapp\.net$/.exec(jid || '');
  return m ? `+${m[1]}` : jid;
}

function fmtDateTime(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  const today = new Date().toDateString() === d.toDateString();
  return today ? fmtTime(ts) : d.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
}

function fmtDuration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  const hr = Math.round(m / 60);
  if (hr < 48) return `${hr} h`;
  return `${Math.round(hr / 24)} days`;
}

const STATUS_LABEL = {
  qr_pending: 'QR pending',
  connecting: 'connecting',
  connected: 'connected',
  disconnected: 'disconnected',
};
const REASON_LABEL = {
  transient: 'connection dropped, reconnecting',
  logged_out: 'logged out',
  banned: 'banned',
  stopped: 'stopped',
  qr_timeout: 'QR not scanned in time',
};

/** Why a number is resting (the instance's `resting`): short, and the legend's words. */
const RESTING_LABEL = {
  offline: 'offline',
  health: 'low health',
  quiet_hours: 'quiet hours',
  cap: 'at its cap',
  first_contact_cap: 'first-contact cap',
  warming: 'warming cap',
  rewarming: 're-warming cap',
  gap: 'pausing',
};

function restingView(resting) {
  if (!resting) return h('span', { class: 'resting ready' }, 'ready to send');
  return h('span', { class: `resting r-${resting}` }, RESTING_LABEL[resting] || resting.replace(/_/g, ' '));
}

function statusPill(status, reason) {
  const cls = reason === 'banned' ? 's-banned' : `s-${status}`;
  const label = reason === 'banned' ? 'banned' : STATUS_LABEL[status] || status;
  return h('span', { class: `pill ${cls}`, dataset: { role: 'status' } }, label);
}

function shortId(id) {
  if (!id) return '';
  return id.length > 14 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id;
}

function instanceName(id) {
  const i = id && state.instances.get(id);
  return i ? i.name : state.names.get(id) || shortId(id);
}

// ---------------------------------------------------------------- sign in / out

async function signIn(key) {
  const list = await api('GET', '/v1/instances', undefined, { key });
  state.key = key;
  sessionStorage.setItem(KEY_STORE, key);
  $('signin-view').hidden = true;
  $('app-view').hidden = false;
  $('session').hidden = false;
  setInstances(list.items || []);
  connectEvents();
  loadPools().catch(fail('Loading pools'));
  loadWebhooks().catch(fail('Loading webhooks'));
  document.dispatchEvent(new CustomEvent('bz:session', {
    detail: {
      api, h, toast, fail, fmtDateTime, fmtDuration, fmtTime, fmtChat, instanceName,
      instances: () => sortedInstances(),
      pools: () => state.pools,
    },
  }));
  state.tick = setInterval(() => {
    // Warming progress and QR countdowns move with the clock; counts are refreshed by events.
    // Why a number rests (a gap, a cap) ends with the clock too: resting numbers are read again.
    for (const inst of state.instances.values()) {
      if (inst.resting && inst.resting !== 'offline') scheduleRefresh(inst.id, 0);
    }
    renderInstances();
  }, 30000);
}

function signOut(message) {
  document.dispatchEvent(new CustomEvent('bz:signout'));
  sessionStorage.removeItem(KEY_STORE);
  state.key = null;
  if (state.es) state.es.close();
  state.es = null;
  state.esOpenedOnce = false;
  clearTimeout(state.esRetry);
  clearInterval(state.tick);
  for (const id of [...state.qr.keys()]) dropQr(id);
  for (const r of state.refresh.values()) clearTimeout(r.timer);
  state.refresh.clear();
  state.instances.clear();
  state.names.clear();
  state.pools = [];
  poolsSig = '';
  delete $('send-from').dataset.sig;
  state.webhooks = [];
  state.feed = [];
  state.sent = [];
  state.statusSeen.clear();
  state.deliveriesOpen.clear();
  state.deliveries.clear();
  state.lastEventId = null;
  $('app-view').hidden = true;
  $('session').hidden = true;
  $('signin-view').hidden = false;
  $('instances').replaceChildren();
  $('feed-list').replaceChildren();
  $('sent-list').replaceChildren();
  $('webhook-list').replaceChildren();
  $('webhook-secret').hidden = true;
  const err = $('signin-error');
  err.hidden = !message;
  err.textContent = message || '';
  $('signin-key').value = '';
  $('signin-key').focus();
}

$('signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const key = $('signin-key').value.trim();
  const err = $('signin-error');
  const btn = $('signin-submit');
  err.hidden = true;
  if (!key) return;
  btn.disabled = true;
  try {
    await signIn(key);
  } catch (e) {
    err.hidden = false;
    if (e.status === 401) err.textContent = 'That key was not accepted. Check it and try again.';
    else if (e.status === 403) err.textContent = 'That is not a tenant API key (the admin token cannot use the dashboard). Create a tenant and use its key.';
    else err.textContent = e.message;
  } finally {
    btn.disabled = false;
  }
});

$('signout').addEventListener('click', () => signOut());

// ---------------------------------------------------------------- live events (SSE)

function setLive(s, text) {
  $('live').dataset.state = s;
  $('live-text').textContent = text;
}

function connectEvents() {
  if (state.es) state.es.close();
  const params = new URLSearchParams({ access_token: state.key });
  // EventSource resumes by itself with Last-Event-ID; a stream we open again after it gave up
  // resumes through the query parameter instead.
  if (state.lastEventId) params.set('last_event_id', state.lastEventId);
  const es = new EventSource(`/v1/events?${params}`);
  state.es = es;
  setLive('connecting', 'connecting');
  es.addEventListener('open', () => {
    setLive('open', 'live');
    if (state.esOpenedOnce) loadInstances().catch(fail('Refreshing numbers'));
    state.esOpenedOnce = true;
  });
  es.addEventListener('error', () => {
    if (es !== state.es) return;
    if (es.readyState === EventSource.CLOSED) {
      // The browser gave up (for example the key was revoked, or the gateway answered an
      // error): check the key, then open a new stream after a pause.
      setLive('closed', 'offline');
      clearTimeout(state.esRetry);
      state.esRetry = setTimeout(() => {
        if (!state.key) return;
        api('GET', '/v1/instances')
          .then((list) => { setInstances(list.items || []); connectEvents(); })
          .catch(() => { if (state.key) connectEvents(); });
      }, 3000);
    } else {
      setLive('connecting', 'reconnecting');
    }
  });
  const onEvent = (msg) => {
    if (es !== state.es) return;
    let e;
    try { e = JSON.parse(msg.data); } catch (_) { return; }
    if (e.id) state.lastEventId = e.id;
    handleEvent(e);
  };
  for (const t of EVENT_TYPES) es.addEventListener(t, onEvent);
  es.addEventListener('message', onEvent);
}

function handleEvent(e) {
  addToFeed(e);
  document.dispatchEvent(new CustomEvent('bz:event', { detail: e }));
  const id = e.instance_id;
  const d = e.data || {};
  if (e.type === 'instance.qr' && id) {
    const inst = state.instances.get(id);
    if (inst && inst.status === 'qr_pending') fetchQr(id);
    else scheduleRefresh(id, 0);
  } else if (e.type.startsWith('instance.') && id && state.instances.size > LARGE) {
    applyInstanceEvent(e);
    scheduleReload();
  } else if (e.type.startsWith('instance.') && id) {
    scheduleRefresh(id, 0);
  } else if (e.type === 'message.status') {
    if (d.message_id) {
      state.statusSeen.set(d.message_id, d);
      if (state.statusSeen.size > 500) state.statusSeen.delete(state.statusSeen.keys().next().value);
      const m = state.sent.find((x) => x.id === d.message_id);
      if (m) {
        m.status = d.status;
        m.error = d.error || null;
        if (d.instance_id) m.instance_id = d.instance_id;
        renderSent();
      }
    }
    const iid = d.instance_id || id;
    if (iid && (d.status === 'sent' || d.status === 'failed')) scheduleRefresh(iid, 400);
  } else if (e.type === 'message.received' && id) {
    scheduleRefresh(id, 400);
  }
}

// ---------------------------------------------------------------- numbers

function setInstances(items) {
  const seen = new Set();
  for (const i of items) {
    seen.add(i.id);
    state.instances.set(i.id, i);
    state.names.set(i.id, i.name);
  }
  for (const id of [...state.instances.keys()]) {
    if (!seen.has(id)) state.instances.delete(id);
  }
  renderInstances();
}

/** A large list: what an `instance.*` event says, applied to the number shown. */
function applyInstanceEvent(e) {
  const inst = state.instances.get(e.instance_id);
  const d = e.data || {};
  if (!inst) return;
  if (e.type === 'instance.health') {
    inst.health = { ...inst.health, score: d.score, in_rotation: d.in_rotation };
  } else if (d.status) {
    inst.status = d.status;
    inst.reason = d.reason ?? null;
    inst.detail = d.detail ?? null;
  }
  renderInstances();
}

/** A large list: reads the whole list again once, RELOAD_MS after the first call. */
function scheduleReload() {
  if (state.reloadTimer) return;
  state.reloadTimer = setTimeout(() => {
    state.reloadTimer = null;
    if (state.key) loadInstances().catch(() => {});
  }, RELOAD_MS);
}

async function loadInstances() {
  const list = await api('GET', '/v1/instances');
  setInstances(list.items || []);
}

/** Reads one number again, soon; calls close together are folded into one read. */
function scheduleRefresh(id, delay) {
  let r = state.refresh.get(id);
  if (!r) {
    r = { timer: null, inflight: false, again: false };
    state.refresh.set(id, r);
  }
  if (r.inflight) { r.again = true; return; }
  if (r.timer) return;
  r.timer = setTimeout(() => refreshInstance(id, r), delay);
}

async function refreshInstance(id, r) {
  r.timer = null;
  r.inflight = true;
  try {
    const inst = await api('GET', `/v1/instances/${encodeURIComponent(id)}`);
    if (state.key) {
      state.instances.set(id, inst);
      state.names.set(id, inst.name);
    }
  } catch (e) {
    if (e.status === 404) state.instances.delete(id);
    else if (e.status !== 401) console.warn('refreshing', id, e);
  } finally {
    r.inflight = false;
    renderInstances();
    if (r.again) {
      r.again = false;
      scheduleRefresh(id, 0);
    }
  }
}

function sortedInstances() {
  return [...state.instances.values()].sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0));
}

/** Renders the numbers soon: at once for a small list, at most every RENDER_GAP_MS for a large one. */
function renderInstances() {
  if (state.renderTimer) return;
  const wait = state.instances.size > LARGE ? Math.max(0, state.lastRender + RENDER_GAP_MS - Date.now()) : 0;
  state.renderTimer = setTimeout(() => {
    state.renderTimer = null;
    state.lastRender = Date.now();
    renderInstancesNow();
  }, wait);
}

function renderInstancesNow() {
  if (!state.key) return;
  const list = sortedInstances();
  const box = $('instances');
  const byId = new Map([...box.children].map((el) => [el.dataset.id, el]));
  // A large list shows its first cards, and more on request.
  state.shown = Math.max(state.shown, PAGE_CARDS);
  const visible = list.length > LARGE ? list.slice(0, state.shown) : list;
  const cards = visible.map((inst) => {
    syncQr(inst);
    const card = instanceCard(inst);
    const old = byId.get(inst.id);
    // Keep focus on a button that is re-rendered (keyboard users).
    if (old && old.contains(document.activeElement) && document.activeElement.dataset.action) {
      const again = card.querySelector(`[data-action="${document.activeElement.dataset.action}"]`);
      if (again) queueMicrotask(() => again.focus());
    }
    return card;
  });
  if (visible.length < list.length) {
    const more = h('button', { type: 'button', class: 'secondary', 'data-id': '' }, `Show ${Math.min(PAGE_CARDS, list.length - visible.length)} more (${visible.length} of ${list.length} shown)`);
    more.addEventListener('click', () => { state.shown += PAGE_CARDS; renderInstancesNow(); });
    cards.push(more);
  }
  box.replaceChildren(...cards);
  for (const id of [...state.qr.keys()]) {
    if (!state.instances.has(id)) dropQr(id);
  }
  $('instances-empty').hidden = list.length > 0;
  $('numbers-count').textContent = list.length ? `· ${list.length}` : '';
  renderSummary(list);
  renderFromOptions(list);
  renderPools();
}

function renderSummary(list) {
  const counts = {};
  for (const i of list) {
    const k = i.reason === 'banned' ? 'banned' : i.status;
    counts[k] = (counts[k] || 0) + 1;
  }
  const order = ['connected', 'connecting', 'qr_pending', 'disconnected', 'banned'];
  const inRotation = list.filter((i) => i.health && i.health.in_rotation).length;
  const sent = list.reduce((n, i) => n + ((i.stats && i.stats.sent_today) || 0), 0);
  const received = list.reduce((n, i) => n + ((i.stats && i.stats.received_today) || 0), 0);
  const chips = order.filter((k) => counts[k]).map((k) =>
    h('span', { class: `pill s-${k}` }, `${counts[k]} ${k === 'qr_pending' ? 'QR pending' : k}`));
  if (list.length) {
    chips.push(h('span', { class: 'pill plain' }, `${inRotation} in rotation`));
    chips.push(h('span', { class: 'pill plain' }, `${sent} sent · ${received} received today`));
  }
  $('summary').replaceChildren(...chips);
}

function renderFromOptions(list) {
  const sel = $('send-from');
  const labels = list.map((i) => [i.id, `${i.name}${i.phone ? ` · ${i.phone}` : ''}${i.status === 'connected' ? '' : ` (${STATUS_LABEL[i.status] || i.status})`}`]);
  // Rebuilding the select closes it under the user's finger: only when its options change.
  const sig = JSON.stringify(labels);
  if (sel.dataset.sig === sig) return;
  sel.dataset.sig = sig;
  const current = sel.value;
  sel.replaceChildren(h('option', { value: '' }, 'Any number (rotation)'),
    ...labels.map(([id, label]) => h('option', { value: id }, label)));
  sel.value = list.some((i) => i.id === current) ? current : '';
}

function barClass(score) {
  return score >= 70 ? '' : score >= 40 ? 'mid' : 'low';
}

function bar(pct, cls) {
  const fill = h('span');
  fill.style.width = `${Math.max(0, Math.min(100, pct))}%`;
  return h('div', { class: `bar ${cls || ''}`, role: 'presentation' }, fill);
}

function warmingView(w) {
  if (w && w.rewarming && w.rewarm_until) {
    const left = new Date(w.rewarm_until).getTime() - Date.now();
    return [bar(50, 'warm'), h('div', { class: 'small-note' }, `re-warming after idle · ${fmtDuration(Math.max(0, left))} left`)];
  }
  if (!w || !w.days) return [h('div', null, 'none'), h('div', { class: 'small-note' }, 'full caps from the start')];
  if (!w.until) {
    return [bar(0, 'warm'), h('div', { class: 'small-note' }, `${w.days} days, from the first connection`)];
  }
  const until = new Date(w.until).getTime();
  const span = w.days * 86400000;
  const now = Date.now();
  if (!w.active || now >= until) {
    return [bar(100, 'warm'), h('div', { class: 'small-note' }, 'warmed')];
  }
  const pct = Math.max(3, ((now - (until - span)) / span) * 100);
  const day = Math.min(w.days, Math.floor((now - (until - span)) / 86400000) + 1);
  return [bar(pct, 'warm'), h('div', { class: 'small-note' }, `day ${day} of ${w.days} · ${fmtDuration(until - now)} left`)];
}

function instanceCard(inst) {
  const health = inst.health || { score: 0, in_rotation: false };
  const stats = inst.stats || { sent_today: 0, received_today: 0 };
  const sub = [h('span', { class: 'mono', dataset: { role: 'phone' } }, inst.phone || 'not linked yet')];
  if (inst.status === 'connected' && inst.connected_at) sub.push(` · since ${fmtShort(inst.connected_at)}`);
  const card = h('article', {
    class: 'card inst',
    dataset: { id: inst.id, status: inst.status, reason: inst.reason || '' },
    'aria-label': inst.name,
  });
  append(card, [
    h('header', { class: 'inst-head' },
      h('div', { class: 'inst-title' },
        h('h3', null, inst.name),
        h('div', { class: 'inst-sub' }, sub)),
      statusPill(inst.status, inst.reason)),
  ]);
  // The status pill already says "banned"; the box adds the reason otherwise, and the detail.
  const reasonLabel = inst.reason && inst.reason !== 'banned' ? REASON_LABEL[inst.reason] || inst.reason : null;
  if (reasonLabel || inst.detail) {
    card.append(h('div', { class: 'inst-reason', dataset: { role: 'reason' } },
      reasonLabel ? h('strong', null, reasonLabel) : null,
      inst.detail ? h('span', { class: 'detail' }, inst.detail) : null));
  }
  if (inst.status === 'qr_pending') card.append(qrBox(inst.id));
  const metrics = h('dl', { class: 'metrics' },
    h('div', null, h('dt', null, 'Health'),
      h('dd', null,
        h('div', null, `${health.score} / 100`),
        bar(health.score, barClass(health.score)),
        h('div', { class: 'small-note', dataset: { role: 'rotation' } }, health.in_rotation ? 'in rotation' : 'out of rotation'))),
    h('div', null, h('dt', null, 'Warming'), h('dd', null, warmingView(inst.warming))),
    h('div', null, h('dt', null, 'Now'), h('dd', { dataset: { role: 'resting' } }, restingView(inst.resting))),
    h('div', null, h('dt', null, 'Today'),
      h('dd', { dataset: { role: 'stats' } }, `${stats.sent_today} sent · ${stats.received_today} received`)),
    h('div', null, h('dt', null, 'Pool'), h('dd', null, inst.pool)),
    inst.proxy ? h('div', { class: 'span-2' }, h('dt', null, 'Proxy'), h('dd', { class: 'mono' }, inst.proxy)) : null,
  );
  card.append(metrics);
  const act = (label, action, cls) => h('button', {
    type: 'button', class: `btn small ${cls || ''}`, dataset: { action },
    onclick: (ev) => instanceAction(inst, action, ev.currentTarget),
  }, label);
  const linked = inst.status === 'connected' || inst.status === 'connecting' || !!inst.phone;
  card.append(h('footer', { class: 'inst-actions' },
    inst.status === 'disconnected' ? act('Connect', 'connect', 'primary') : act('Disconnect', 'disconnect'),
    linked && inst.reason !== 'logged_out' ? act('Log out', 'logout') : null,
    h('button', {
      type: 'button', class: 'btn small ghost', dataset: { action: 'calls' },
      title: 'Calls and presence', onclick: () => callSettings(inst),
    }, 'Calls'),
    h('span', { class: 'spacer' }),
    act('Delete', 'delete', 'danger')));
  return card;
}

// ---------------------------------------------------------------- calls and presence

/** The number's call and presence settings in a dialog of its own (the cards are redrawn by
 * live events, which would wipe a form inside them), saved with one PATCH. */
function callSettings(inst) {
  const old = $('call-settings');
  if (old) old.remove();
  const reject = h('input', { type: 'checkbox', name: 'reject_calls' });
  reject.checked = !!inst.reject_calls;
  const message = h('textarea', {
    name: 'reject_call_message', rows: 3, maxlength: 4096,
    placeholder: 'This number does not take calls — please write to us here.',
  });
  message.value = inst.reject_call_message || '';
  const online = h('input', { type: 'checkbox', name: 'always_online' });
  online.checked = !!inst.always_online;
  const dialog = h('dialog', { id: 'call-settings', class: 'card dialog', 'aria-label': `Calls and presence of ${inst.name}` });
  const form = h('form', { method: 'dialog', class: 'form-grid' },
    h('h3', { class: 'span-2' }, `Calls and presence · ${inst.name}`),
    h('label', { class: 'check span-2' }, reject, ' Reject incoming calls'),
    h('label', { class: 'field span-2' },
      h('span', null, 'Reply to a rejected call ', h('em', null, 'optional; sent from this number like any message')),
      message),
    h('label', { class: 'check span-2' }, online, ' Always online (show this number as available)'),
    h('div', { class: 'form-actions span-2' },
      h('button', { type: 'button', class: 'btn ghost', onclick: () => dialog.close() }, 'Cancel'),
      h('button', { type: 'submit', class: 'btn primary' }, 'Save')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = message.value.trim();
    try {
      const updated = await api('PATCH', `/v1/instances/${encodeURIComponent(inst.id)}`, {
        reject_calls: reject.checked,
        reject_call_message: text || null,
        always_online: online.checked,
      });
      dialog.close();
      toast(`${inst.name}: call settings saved`);
      if (updated && updated.id === inst.id) {
        state.instances.set(inst.id, updated);
        renderInstances();
      }
    } catch (e) {
      fail('Saving the call settings')(e);
    }
  });
  dialog.append(form);
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

async function instanceAction(inst, action, btn) {
  const id = encodeURIComponent(inst.id);
  if (action === 'delete' && !confirm(`Delete the number “${inst.name}”? It is logged out and its session is wiped.`)) return;
  if (action === 'logout' && !confirm(`Log “${inst.name}” out? Linking it again needs a new QR scan.`)) return;
  btn.disabled = true;
  try {
    if (action === 'delete') {
      await api('DELETE', `/v1/instances/${id}`);
      state.instances.delete(inst.id);
      toast(`Deleted ${inst.name}`);
    } else {
      const updated = await api('POST', `/v1/instances/${id}/${action}`);
      if (updated && updated.id) state.instances.set(updated.id, updated);
    }
  } catch (e) {
    fail(`${action[0].toUpperCase()}${action.slice(1)} ${inst.name}`)(e);
    scheduleRefresh(inst.id, 0);
  } finally {
    btn.disabled = false;
    renderInstances();
  }
}

// ---------------------------------------------------------------- QR codes

function syncQr(inst) {
  const q = state.qr.get(inst.id);
  if (inst.status === 'qr_pending') {
    if (!q) {
      const img = h('img', { alt: `QR code to link ${inst.name}`, width: 196, height: 196, dataset: { role: 'qr' } });
      state.qr.set(inst.id, { img, url: null, inflight: false, again: false, timer: null, error: null });
      fetchQr(inst.id);
    }
  } else if (q) {
    dropQr(inst.id);
  }
}

function dropQr(id) {
  const q = state.qr.get(id);
  if (!q) return;
  clearTimeout(q.timer);
  if (q.url) URL.revokeObjectURL(q.url);
  q.img.removeAttribute('src');
  state.qr.delete(id);
}

function qrBox(id) {
  const q = state.qr.get(id);
  const box = h('div', { class: 'qr-box' });
  if (q && q.url) box.append(q.img);
  else box.append(h('div', { class: 'qr-wait' }, q && q.error ? q.error : 'Waiting for the QR code…'));
  box.append(h('p', null, 'Scan with WhatsApp → Settings → Linked devices. A new code appears here by itself.'));
  return box;
}

/** Fetches the number's current QR code as a PNG (with the Authorization header) and shows it. */
async function fetchQr(id) {
  const q = state.qr.get(id);
  if (!q) return;
  if (q.inflight) { q.again = true; return; }
  q.inflight = true;
  clearTimeout(q.timer);
  try {
    const res = await api('GET', `/v1/instances/${encodeURIComponent(id)}/qr`, undefined, { accept: 'image/png' });
    const blob = await res.blob();
    if (state.qr.get(id) !== q) return; // dropped meanwhile
    const url = URL.createObjectURL(blob);
    const old = q.url;
    q.url = url;
    q.error = null;
    q.img.src = url;
    if (old) URL.revokeObjectURL(old);
  } catch (e) {
    if (e.status === 409 || e.status === 404) scheduleRefresh(id, 0);
    else if (state.qr.get(id) === q) q.error = `QR code unavailable: ${e.message}`;
  } finally {
    q.inflight = false;
    if (state.qr.get(id) === q) {
      q.timer = setTimeout(() => fetchQr(id), QR_REFRESH_MS);
      if (q.again) { q.again = false; fetchQr(id); }
    }
    renderInstances();
  }
}

// ---------------------------------------------------------------- create

const createForm = $('create-form');
$('add-toggle').addEventListener('click', () => {
  const open = createForm.hidden;
  createForm.hidden = !open;
  $('add-toggle').setAttribute('aria-expanded', String(open));
  if (open) createForm.elements.name.focus();
});
$('create-cancel').addEventListener('click', () => {
  createForm.hidden = true;
  $('add-toggle').setAttribute('aria-expanded', 'false');
});
createForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = createForm.elements;
  const body = { name: f.name.value.trim() };
  if (f.pool.value.trim()) body.pool = f.pool.value.trim();
  if (f.proxy.value.trim()) body.proxy = f.proxy.value.trim();
  const btn = createForm.querySelector('[type=submit]');
  btn.disabled = true;
  try {
    const inst = await api('POST', '/v1/instances', body);
    state.instances.set(inst.id, inst);
    state.names.set(inst.id, inst.name);
    renderInstances();
    createForm.reset();
    createForm.hidden = true;
    $('add-toggle').setAttribute('aria-expanded', 'false');
    toast(`Created ${inst.name}: scan its QR code`);
    if (body.pool && !state.pools.some((p) => p.name === inst.pool)) loadPools().catch(() => {});
  } catch (e) {
    fail('Creating the number')(e);
  } finally {
    btn.disabled = false;
  }
});

// ---------------------------------------------------------------- send a test message

const sendForm = $('send-form');
sendForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = sendForm.elements;
  const body = { to: f.to.value.trim(), text: f.text.value };
  if (f.instance_id.value) body.instance_id = f.instance_id.value;
  const btn = $('send-submit');
  btn.disabled = true;
  try {
    const m = await api('POST', '/v1/messages', body);
    const seen = state.statusSeen.get(m.id);
    state.sent.unshift({
      id: m.id, to: m.to, text: body.text, status: seen ? seen.status : m.status,
      error: seen ? seen.error || null : null,
      instance_id: (seen && seen.instance_id) || m.instance_id, at: m.created_at,
    });
    state.sent.length = Math.min(state.sent.length, SENT_MAX);
    renderSent();
    f.text.value = '';
    toast(`Accepted ${m.id}`);
  } catch (e) {
    fail('Sending')(e);
  } finally {
    btn.disabled = false;
  }
});

function renderSent() {
  $('sent-list').replaceChildren(...state.sent.map((m) => h('li', { class: 'sent-item', dataset: { id: m.id, status: m.status } },
    h('div', { class: 'sent-text' }, h('strong', null, fmtChat(m.to)), ' · ', m.text),
    h('span', { class: `pill s-${m.status}`, dataset: { role: 'msg-status' } }, m.status),
    h('div', { class: 'sent-meta' },
      h('span', { class: 'mono', dataset: { role: 'msg-id' } }, m.id),
      m.instance_id ? ` · via ${instanceName(m.instance_id)}` : ' · rotation',
      ` · ${fmtTime(m.at)}`,
      m.error ? ` · ${m.error}` : ''))));
}

// ---------------------------------------------------------------- pools

async function loadPools() {
  const list = await api('GET', '/v1/pools');
  state.pools = list.items || [];
  renderPools();
}

let poolsSig = '';

function renderPools() {
  const counts = {};
  for (const i of state.instances.values()) counts[i.pool] = (counts[i.pool] || 0) + 1;
  const sig = JSON.stringify([state.pools, counts]);
  if (sig === poolsSig) return;
  poolsSig = sig;
  $('pool-list').replaceChildren(...state.pools.map((p) => {
    const sel = h('select', { 'aria-label': `Strategy of pool ${p.name}`, dataset: { pool: p.name } },
      STRATEGIES.map(([v, label]) => h('option', { value: v }, label)));
    sel.value = p.strategy;
    sel.addEventListener('change', async () => {
      sel.disabled = true;
      try {
        const up = await api('PUT', `/v1/pools/${encodeURIComponent(p.name)}`, { strategy: sel.value });
        p.strategy = up.strategy;
        poolsSig = '';
        toast(`Pool ${p.name}: ${up.strategy.replace(/_/g, ' ')}`);
      } catch (e) {
        sel.value = p.strategy;
        fail(`Changing pool ${p.name}`)(e);
      } finally {
        sel.disabled = false;
      }
    });
    const n = counts[p.name] || 0;
    return h('li', { class: 'pool-row' },
      h('span', { class: 'pool-name' }, p.name, h('span', { class: 'small-note' }, `${n} number${n === 1 ? '' : 's'}`)),
      sel);
  }));
  $('pool-names').replaceChildren(...state.pools.map((p) => h('option', { value: p.name })));
}

$('pool-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = ev.currentTarget.elements;
  try {
    await api('PUT', `/v1/pools/${encodeURIComponent(f.name.value.trim())}`, { strategy: f.strategy.value });
    ev.currentTarget.reset();
    await loadPools();
  } catch (e) {
    fail('Adding the pool')(e);
  }
});

// ---------------------------------------------------------------- webhooks

async function loadWebhooks() {
  const list = await api('GET', '/v1/webhooks');
  state.webhooks = list.items || [];
  for (const id of [...state.deliveriesOpen]) {
    if (state.webhooks.some((w) => w.id === id)) loadDeliveries(id);
    else state.deliveriesOpen.delete(id);
  }
  renderWebhooks();
}

async function loadDeliveries(id) {
  if (!state.deliveries.has(id)) state.deliveries.set(id, 'loading');
  renderWebhooks();
  try {
    const list = await api('GET', `/v1/webhooks/${encodeURIComponent(id)}/deliveries?limit=8`);
    state.deliveries.set(id, list.items || []);
  } catch (e) {
    state.deliveries.set(id, e);
  }
  renderWebhooks();
}

function renderWebhooks() {
  $('webhooks-empty').hidden = state.webhooks.length > 0;
  $('webhook-list').replaceChildren(...state.webhooks.map((w) => {
    const open = state.deliveriesOpen.has(w.id);
    const card = h('div', { class: 'card webhook', dataset: { id: w.id } },
      h('div', { class: 'webhook-head' },
        h('div', { class: 'webhook-url' }, w.url),
        h('div', { class: 'webhook-actions' },
          h('button', {
            type: 'button', class: 'btn small', 'aria-expanded': String(open), dataset: { action: 'deliveries' },
            onclick: () => {
              if (open) state.deliveriesOpen.delete(w.id);
              else { state.deliveriesOpen.add(w.id); loadDeliveries(w.id); }
              renderWebhooks();
            },
          }, open ? 'Hide deliveries' : 'Deliveries'),
          open ? h('button', { type: 'button', class: 'btn small ghost', onclick: () => loadDeliveries(w.id) }, 'Refresh') : null,
          h('button', {
            type: 'button', class: 'btn small danger', dataset: { action: 'delete' },
            onclick: async () => {
              if (!confirm(`Delete the webhook to ${w.url}? Its pending deliveries are dropped.`)) return;
              try {
                await api('DELETE', `/v1/webhooks/${encodeURIComponent(w.id)}`);
                state.deliveriesOpen.delete(w.id);
                await loadWebhooks();
              } catch (e) { fail('Deleting the webhook')(e); }
            },
          }, 'Delete'))),
      h('div', { class: 'chips' }, w.events.map((e) => h('span', { class: 'chip' }, e)),
        h('span', { class: 'small-note' }, `added ${fmtDateTime(w.created_at)}`)));
    if (open) card.append(deliveriesView(w));
    return card;
  }));
}

function deliveriesView(w) {
  const d = state.deliveries.get(w.id);
  if (d === 'loading' || d === undefined) return h('p', { class: 'small-note' }, 'Loading deliveries…');
  if (d instanceof Error) return h('p', { class: 'form-error' }, d.message);
  if (!d.length) return h('p', { class: 'small-note' }, 'No deliveries yet.');
  return h('ul', { class: 'deliveries' }, d.map((x) => {
    const info = [];
    info.push(`${x.attempts} attempt${x.attempts === 1 ? '' : 's'}`);
    if (x.last_status) info.push(`HTTP ${x.last_status}`);
    if (x.last_error) info.push(x.last_error);
    if (x.status === 'pending' && x.next_attempt_at) info.push(`next ${fmtTime(x.next_attempt_at)}`);
    info.push(fmtTime(x.created_at));
    const btn = h('button', {
      type: 'button', class: 'btn small', dataset: { action: 'retry' },
      onclick: async () => {
        btn.disabled = true;
        try {
          await api('POST', `/v1/webhooks/${encodeURIComponent(w.id)}/deliveries/${encodeURIComponent(x.id)}/retry`);
          toast(`Re-sending ${x.event_type}`);
          setTimeout(() => loadDeliveries(w.id), 800);
        } catch (e) {
          fail('Re-sending')(e);
        } finally {
          btn.disabled = false;
        }
      },
    }, 'Re-send');
    return h('li', { class: 'delivery', dataset: { id: x.id, status: x.status } },
      h('span', { class: `pill s-${x.status}` }, x.status),
      h('span', { class: 'd-type' }, x.event_type),
      h('span', { class: 'd-info' }, info.join(' · ')),
      btn);
  }));
}

$('webhook-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  const f = form.elements;
  const events = f.events.value.split(',').map((s) => s.trim()).filter(Boolean);
  try {
    const w = await api('POST', '/v1/webhooks', { url: f.url.value.trim(), events });
    $('webhook-secret-value').textContent = w.secret;
    $('webhook-secret').hidden = false;
    f.url.value = '';
    await loadWebhooks();
  } catch (e) {
    fail('Adding the webhook')(e);
  }
});
$('webhook-secret-close').addEventListener('click', () => {
  $('webhook-secret').hidden = true;
  $('webhook-secret-value').textContent = '';
});
$('webhooks-refresh').addEventListener('click', () => loadWebhooks().catch(fail('Loading webhooks')));

// ---------------------------------------------------------------- live feed

function summarize(e) {
  const d = e.data || {};
  switch (e.type) {
    case 'instance.qr':
      return d.expires_at ? `new QR code, valid until ${fmtTime(d.expires_at)}` : 'new QR code';
    case 'instance.connecting':
      return d.reason ? `connecting (${REASON_LABEL[d.reason] || d.reason})` : 'connecting';
    case 'instance.connected':
      return d.phone ? `connected as ${d.phone}` : 'connected';
    case 'instance.disconnected':
      return `disconnected: ${REASON_LABEL[d.reason] || d.reason || 'unknown'}${d.detail ? ` — ${d.detail}` : ''}`;
    case 'instance.health':
      return `health ${d.score}, ${d.in_rotation ? 'back in rotation' : 'out of rotation'}`;
    case 'message.status':
      return `${shortId(d.message_id)} → ${d.status}${d.error ? `: ${d.error}` : ''}`;
    case 'campaign.created': case 'campaign.progress': case 'campaign.paused':
    case 'campaign.resumed': case 'campaign.canceled': case 'campaign.finished': {
      const t = d.totals || {};
      const out = (t.sent || 0) + (t.delivered || 0) + (t.read || 0);
      return `${d.name || shortId(d.campaign_id)}: ${d.status}, ${out}/${t.recipients || 0} out`;
    }
    case 'message.received': {
      const who = (d.sender && (d.sender.phone || d.sender.push_name || d.sender.jid)) || 'someone';
      const where = d.chat && d.chat.type === 'group' ? ' in a group' : '';
      const text = d.text ? `: ${d.text.length > 140 ? `${d.text.slice(0, 140)}…` : d.text}` : '';
      return `from ${who}${where}${text}`;
    }
    default:
      return '';
  }
}

function feedItem(e, fresh) {
  const typeCls = `t-${e.type.split('.')[0]} t-${e.type.replace('.', '-')}`;
  const pre = h('pre');
  const details = h('details', null,
    h('summary', null,
      h('span', { class: `pill ev-type ${typeCls}` }, e.type),
      h('span', { class: 'ev-time' }, fmtTime(e.created_at)),
      h('span', { class: 'ev-text' },
        e.instance_id ? h('span', { class: 'ev-who' }, instanceName(e.instance_id), ' ') : null,
        summarize(e))),
    pre);
  // The raw envelope is rendered only when opened.
  details.addEventListener('toggle', () => {
    if (details.open && !pre.textContent) pre.textContent = JSON.stringify(e, null, 2);
  }, { once: false });
  return h('li', { class: fresh ? 'ev fresh' : 'ev', dataset: { type: e.type, id: e.id } }, details);
}

function matchesFilter(e) {
  const f = state.filter.trim().replace(/\*$/, '');
  return !f || e.type.startsWith(f);
}

function addToFeed(e) {
  state.feed.unshift(e);
  const list = $('feed-list');
  if (state.feed.length > FEED_MAX) {
    state.feed.length = FEED_MAX;
  }
  if (matchesFilter(e)) list.prepend(feedItem(e, true));
  while (list.children.length > FEED_MAX) list.lastElementChild.remove();
  $('feed-empty').hidden = list.children.length > 0;
}

function renderFeed() {
  const items = state.feed.filter(matchesFilter).map((e) => feedItem(e, false));
  $('feed-list').replaceChildren(...items);
  const empty = $('feed-empty');
  empty.hidden = items.length > 0;
  empty.textContent = state.feed.length ? 'No event matches the filter.' : 'Waiting for events…';
}

$('feed-filter').addEventListener('input', (ev) => {
  state.filter = ev.currentTarget.value;
  renderFeed();
});
$('feed-clear').addEventListener('click', () => {
  state.feed = [];
  renderFeed();
});

// ---------------------------------------------------------------- start

(async function start() {
  const saved = sessionStorage.getItem(KEY_STORE);
  if (!saved) {
    signOut();
    return;
  }
  try {
    await signIn(saved);
  } catch (e) {
    signOut(e.status === 401 ? 'Your saved key is no longer accepted. Sign in again.' : e.message);
  }
})();
