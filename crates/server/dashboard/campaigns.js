// The Campaigns view: campaigns with their status, a progress bar, per-number counts and the
// finish estimate, with pause / resume / cancel; and a new campaign from a CSV file, which the
// gateway reads (POST /v1/campaigns/preview shows the row count, the problems by line and the
// first texts rendered as they will be sent; POST /v1/campaigns/csv creates it).

const POLL_MS = 3000;
const PREVIEW_DELAY_MS = 400;
const ENDED = new Set(['canceled', 'finished']);

let s = null; // the session's shared helpers (app.js `bz:session`)
let shown = false;
let poll = null;
let campaigns = [];
let previewTimer = null;
let previewSeq = 0;
/** The Idempotency-Key of the campaign being created: one per previewed form, so a double
 * click creates one campaign. */
let createKey = null;

const $ = (id) => document.getElementById(id);
const form = $('campaign-form');

// ---------------------------------------------------------------- the list

async function load() {
  if (!s) return;
  clearTimeout(poll);
  try {
    const list = await s.api('GET', '/v1/campaigns');
    campaigns = list.items || [];
    render();
  } catch (e) {
    s.fail('Loading campaigns')(e);
  } finally {
    // Read again while shown and something still moves.
    if (shown && campaigns.some((c) => !ENDED.has(c.status))) poll = setTimeout(load, POLL_MS);
  }
}

function out(t) {
  return t.sent + t.delivered + t.read;
}

function progressBar(t) {
  const total = Math.max(1, t.recipients);
  const parts = [
    ['done', out(t)],
    ['failed', t.failed],
    ['flight', t.queued + t.sending],
    ['dropped', t.skipped + t.expired + t.canceled],
  ];
  const bar = s.h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': t.recipients, 'aria-valuenow': out(t), 'aria-label': 'Sent' });
  for (const [cls, n] of parts) {
    if (!n) continue;
    const seg = s.h('span', { class: `seg ${cls}`, title: `${cls}: ${n}` });
    seg.style.width = `${(n / total) * 100}%`;
    bar.append(seg);
  }
  return bar;
}

function finishText(c) {
  if (c.status === 'finished') return `finished ${s.fmtDateTime(c.ended_at)}`;
  if (c.status === 'canceled') return `canceled ${s.fmtDateTime(c.ended_at)}`;
  if (c.status === 'paused') return 'paused';
  if (c.status === 'scheduled' && c.window && c.window.opens_at) return `waiting for its window (opens ${s.fmtDateTime(c.window.opens_at)})`;
  if (!c.estimated_finish_at) return 'no number can send now';
  const left = new Date(c.estimated_finish_at).getTime() - Date.now();
  return `finish ≈ ${s.fmtDateTime(c.estimated_finish_at)} (in ${s.fmtDuration(Math.max(0, left))})`;
}

async function act(c, action, btn) {
  if (action === 'cancel' && !confirm(`Cancel “${c.name}”? Recipients not yet queued are never sent.`)) return;
  btn.disabled = true;
  try {
    const updated = await s.api('POST', `/v1/campaigns/${encodeURIComponent(c.id)}/${action}`);
    campaigns = campaigns.map((x) => (x.id === c.id ? updated : x));
    render();
    s.toast(`${c.name}: ${updated.status}`);
    load();
  } catch (e) {
    s.fail(`${action[0].toUpperCase()}${action.slice(1)}`)(e);
    btn.disabled = false;
  }
}

function numbersTable(c) {
  if (!c.numbers.length) return null;
  const row = (cells, head) => s.h('tr', null, cells.map((x) => s.h(head ? 'th' : 'td', null, x)));
  return s.h('table', { class: 'numbers-table' },
    s.h('thead', null, row(['Number', 'Sent', 'Delivered', 'Read', 'Failed'], true)),
    s.h('tbody', null, c.numbers.map((n) => row([s.instanceName(n.instance_id), n.sent, n.delivered, n.read, n.failed]))));
}

function card(c) {
  const t = c.totals;
  const buttons = [];
  const button = (action, label, cls) => {
    const b = s.h('button', { type: 'button', class: `btn small ${cls || ''}`, dataset: { action } }, label);
    b.addEventListener('click', () => act(c, action, b));
    buttons.push(b);
  };
  if (c.status === 'running' || c.status === 'scheduled') button('pause', 'Pause');
  if (c.status === 'paused') button('resume', 'Resume', 'primary');
  if (!ENDED.has(c.status)) button('cancel', 'Cancel', 'danger');
  const counts = [`${out(t)} of ${t.recipients} out`];
  if (t.delivered + t.read) counts.push(`${t.delivered + t.read} delivered`);
  if (t.queued + t.sending) counts.push(`${t.queued + t.sending} in the queue`);
  if (t.pending) counts.push(`${t.pending} pending`);
  if (t.failed) counts.push(`${t.failed} failed`);
  if (t.skipped) counts.push(`${t.skipped} not on WhatsApp`);
  if (t.expired) counts.push(`${t.expired} expired`);
  if (t.canceled) counts.push(`${t.canceled} canceled`);
  return s.h('article', { class: 'card campaign', dataset: { id: c.id, status: c.status } },
    s.h('div', { class: 'campaign-head' },
      s.h('div', { class: 'inst-title' },
        s.h('h3', null, c.name),
        s.h('div', { class: 'inst-sub' }, `pool ${c.pool} · created ${s.fmtDateTime(c.created_at)}`)),
      s.h('span', { class: `pill c-${c.status}`, dataset: { role: 'status' } }, c.status)),
    progressBar(t),
    s.h('div', { class: 'campaign-counts', dataset: { role: 'counts' } }, counts.join(' · ')),
    s.h('div', { class: 'small-note', dataset: { role: 'finish' } }, finishText(c),
      c.capacity && c.capacity.numbers ? ` · ${c.capacity.numbers} number${c.capacity.numbers === 1 ? '' : 's'}, ${Math.round(c.capacity.per_hour)}/h` : ''),
    s.h('details', { class: 'template' }, s.h('summary', null, 'Template'), s.h('pre', null, c.template)),
    numbersTable(c),
    buttons.length ? s.h('div', { class: 'inst-actions' }, buttons) : null);
}

function render() {
  $('campaigns-empty').hidden = campaigns.length > 0;
  $('campaigns-count').textContent = campaigns.length ? `· ${campaigns.length}` : '';
  $('campaign-list').replaceChildren(...campaigns.map(card));
}

// ---------------------------------------------------------------- a new campaign

function formBody() {
  const f = form.elements;
  const body = { template: f.template.value };
  if (f.phone_column.value.trim()) body.phone_column = f.phone_column.value.trim();
  return body;
}

function previewView(p) {
  const summary = [`${p.recipients} recipient${p.recipients === 1 ? '' : 's'}`,
    `columns: ${p.columns.join(', ') || 'none'}`];
  if (p.fields_used.length) summary.push(`template uses ${p.fields_used.join(', ')}`);
  if (p.variants > 1) summary.push(`${p.variants} text variants`);
  const nodes = [s.h('p', { class: 'preview-summary', dataset: { role: 'summary' } }, summary.join(' · '))];
  if (p.problems_total) {
    nodes.push(s.h('p', { class: 'form-error' }, `${p.problems_total} row${p.problems_total === 1 ? '' : 's'} would refuse the campaign:`));
    nodes.push(s.h('ul', { class: 'problems' }, p.problems.map((x) => s.h('li', { dataset: { line: x.line } }, s.h('strong', null, `line ${x.line}`), ` ${x.message}`))));
  }
  if (p.previews.length) {
    nodes.push(s.h('ol', { class: 'previews' }, p.previews.map((x) => s.h('li', { dataset: { line: x.line } },
      s.h('span', { class: 'preview-to' }, `line ${x.line} → ${s.fmtChat(x.to)}`),
      s.h('span', { class: 'preview-text' }, x.text)))));
    if (p.variants > 1) nodes.push(s.h('p', { class: 'small-note' }, 'Spintax choices are drawn again when the campaign is created; the fields are the real ones.'));
  }
  return nodes;
}

async function preview() {
  clearTimeout(previewTimer);
  const box = $('campaign-preview');
  const file = $('campaign-file').files[0];
  const create = $('campaign-create');
  create.disabled = true;
  createKey = null;
  if (!file || !form.elements.template.value.trim()) {
    box.hidden = true;
    return;
  }
  const seq = ++previewSeq;
  try {
    const body = { ...formBody(), csv: await file.text(), previews: 5 };
    const p = await s.api('POST', '/v1/campaigns/preview', body);
    if (seq !== previewSeq) return; // a newer preview is on its way
    box.replaceChildren(...previewView(p));
    box.dataset.ok = String(p.ok);
    create.disabled = !p.ok;
    if (p.ok) createKey = `dash-${crypto.randomUUID()}`;
  } catch (e) {
    if (seq !== previewSeq) return;
    box.dataset.ok = 'false';
    box.replaceChildren(s.h('p', { class: 'form-error', role: 'alert' }, e.message));
  }
  box.hidden = false;
}

function previewSoon() {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(preview, PREVIEW_DELAY_MS);
}

form.addEventListener('input', (e) => { if (e.target.name !== 'name' && e.target.name !== 'pool') previewSoon(); });
$('campaign-file').addEventListener('change', preview);
$('campaign-preview-btn').addEventListener('click', preview);
$('campaigns-refresh').addEventListener('click', load);

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = form.elements;
  const file = $('campaign-file').files[0];
  if (!file || !createKey) return;
  const btn = $('campaign-create');
  btn.disabled = true;
  const body = { ...formBody(), name: f.name.value.trim(), csv: await file.text() };
  if (f.pool.value.trim()) body.pool = f.pool.value.trim();
  try {
    const c = await s.api('POST', '/v1/campaigns/csv', body, { headers: { 'Idempotency-Key': createKey } });
    s.toast(`Created ${c.name}: ${c.totals.recipients} recipients`);
    form.reset();
    $('campaign-preview').hidden = true;
    createKey = null;
    campaigns = [c, ...campaigns.filter((x) => x.id !== c.id)];
    render();
    load();
  } catch (e) {
    s.fail('Creating the campaign')(e);
    btn.disabled = false;
  }
});

// ---------------------------------------------------------------- session and view

let eventReload = null;
document.addEventListener('bz:session', (e) => { s = e.detail; });
document.addEventListener('bz:signout', () => {
  s = null; shown = false; campaigns = []; clearTimeout(poll);
  $('campaign-list').replaceChildren();
  form.reset();
  $('campaign-preview').hidden = true;
});
document.addEventListener('bz:view', (e) => {
  shown = e.detail === 'campaigns';
  if (shown) load(); else clearTimeout(poll);
});
document.addEventListener('bz:event', (e) => {
  // Progress events (at most every 2 s per campaign) read the list again, folded together.
  if (!shown || !e.detail.type.startsWith('campaign.') || eventReload) return;
  eventReload = setTimeout(() => { eventReload = null; load(); }, 300);
});
