// The Chats view: each number's conversations (GET /v1/chats), one chat's messages in both
// directions (GET /v1/chats/{jid}/messages, paged back with "Older"), marking a chat read
// (POST /v1/instances/{id}/messages/{message_id}/read) and a reply box (POST /v1/messages from
// the chat's number). Live `message.*` events refresh what is shown.

const PAGE = 30;
const REFRESH_DELAY_MS = 300;

let s = null; // the session's shared helpers (app.js `bz:session`)
let shown = false;
let chats = [];
let listCursor = null;
/** The open chat: its number, JID and what is loaded of it (oldest last in `items`). */
let open = null;
let refreshTimer = null;
/** Each read of the list, and of the open chat, is numbered: an answer that arrives after a
 * later read's (live events start reads close together) is dropped, not drawn over it. */
let chatsSeq = 0;
let messagesSeq = 0;

const $ = (id) => document.getElementById(id);

function chatTitle(c) {
  if (c.type === 'group') return c.subject || c.jid;
  return c.push_name ? `${c.push_name} (${c.phone || c.jid})` : (c.phone || c.jid);
}

function preview(m) {
  if (!m) return '';
  if (m.kind === 'reaction' && m.reaction) return `reacted ${m.reaction.emoji}`;
  const who = m.direction === 'out' ? 'You: ' : '';
  return who + (m.text || `[${m.kind}]`);
}

// ---------------------------------------------------------------- the list of chats

async function loadChats(more = false) {
  if (!s) return;
  const q = new URLSearchParams({ limit: String(PAGE) });
  const instance = $('chats-number').value;
  if (instance) q.set('instance_id', instance);
  if (more && listCursor) q.set('cursor', listCursor);
  const seq = ++chatsSeq;
  try {
    const page = await s.api('GET', `/v1/chats?${q}`);
    if (seq !== chatsSeq) return;
    chats = more ? chats.concat(page.items) : page.items;
    listCursor = page.next_cursor;
    renderChats();
  } catch (e) {
    s.fail('Loading chats')(e);
  }
}

function renderChats() {
  const list = $('chat-list');
  list.replaceChildren(...chats.map((c) => {
    const active = open && open.instance_id === c.instance_id && open.jid === c.jid;
    const b = s.h('button', {
      type: 'button', class: `chat-item${active ? ' active' : ''}`,
      dataset: { jid: c.jid, instance: c.instance_id },
    },
    s.h('span', { class: 'chat-name' }, chatTitle(c)),
    c.unread_count ? s.h('span', { class: 'badge', dataset: { role: 'unread' } }, String(c.unread_count)) : null,
    s.h('span', { class: 'chat-time' }, s.fmtTime(c.last_message_at)),
    s.h('span', { class: 'chat-last' }, preview(c.last_message)),
    s.h('span', { class: 'chat-number' }, s.instanceName(c.instance_id)));
    b.addEventListener('click', () => openChat(c));
    return b;
  }));
  $('chats-empty').hidden = chats.length > 0;
  $('chats-more').hidden = !listCursor;
}

// ---------------------------------------------------------------- one chat

async function openChat(c) {
  open = { instance_id: c.instance_id, jid: c.jid, chat: c, items: [], cursor: null };
  renderChats();
  await loadMessages(false);
}

async function loadMessages(older) {
  if (!open) return;
  const q = new URLSearchParams({ limit: String(PAGE), instance_id: open.instance_id });
  if (older && open.cursor) q.set('cursor', open.cursor);
  const wanted = open;
  const seq = ++messagesSeq;
  try {
    const page = await s.api('GET', `/v1/chats/${encodeURIComponent(open.jid)}/messages?${q}`);
    if (open !== wanted || seq !== messagesSeq) return; // another chat, or a later read
    open.items = older ? open.items.concat(page.items) : page.items;
    open.cursor = page.next_cursor;
    renderMessages(!older);
  } catch (e) {
    s.fail('Loading the chat')(e);
  }
}

function bubble(m) {
  const lines = [];
  if (m.direction === 'in' && open.chat.type === 'group' && m.sender) {
    lines.push(s.h('div', { class: 'msg-sender' }, m.sender.push_name || m.sender.phone || m.sender.jid));
  }
  if (m.reply_to) lines.push(s.h('div', { class: 'msg-quote' }, `↪ reply to ${m.reply_to.slice(0, 12)}…`));
  if (m.kind === 'reaction' && m.reaction) {
    lines.push(s.h('div', { class: 'msg-text' }, `${m.reaction.emoji} to ${m.reaction.whatsapp_id.slice(0, 12)}…`));
  } else if (m.text) {
    lines.push(s.h('div', { class: 'msg-text' }, m.text));
  }
  if (m.media) {
    lines.push(s.h('div', { class: 'msg-media' }, `[${m.media.kind}${m.media.file_name ? `: ${m.media.file_name}` : ''}]`));
  }
  const meta = [s.fmtTime(m.at)];
  if (m.direction === 'out' && m.status) meta.push(m.status);
  lines.push(s.h('div', { class: 'msg-meta' }, meta.join(' · ')));
  return s.h('div', { class: `msg ${m.direction}`, dataset: { direction: m.direction, kind: m.kind } }, ...lines);
}

function renderMessages(scrollToEnd) {
  const pane = $('chat-pane');
  pane.hidden = !open;
  if (!open) return;
  $('chat-title').textContent = chatTitle(open.chat);
  $('chat-sub').textContent = `${s.instanceName(open.instance_id)} · ${open.chat.type}`;
  // Pages come newest first; a chat reads oldest at the top.
  const list = $('chat-messages');
  list.replaceChildren(...[...open.items].reverse().map(bubble));
  $('chat-older').hidden = !open.cursor;
  $('chat-read').hidden = !open.items.some((m) => m.direction === 'in') || !open.chat.unread_count;
  if (scrollToEnd) list.scrollTop = list.scrollHeight;
}

async function markRead() {
  if (!open) return;
  await loadMessages(false); // the newest message as the gateway has it now
  const newest = open && open.items.find((m) => m.direction === 'in' && m.kind !== 'reaction');
  if (!newest) return;
  try {
    await s.api('POST', `/v1/instances/${encodeURIComponent(open.instance_id)}/messages/${encodeURIComponent(newest.whatsapp_id)}/read`);
    open.chat.unread_count = 0;
    await loadChats();
    renderMessages(false);
  } catch (e) {
    s.fail('Marking read')(e);
  }
}

async function reply(ev) {
  ev.preventDefault();
  const input = $('chat-reply-text');
  const text = input.value.trim();
  if (!open || !text) return;
  const to = open.chat.type === 'group' ? open.jid : (open.chat.phone || open.jid);
  try {
    await s.api('POST', '/v1/messages', { instance_id: open.instance_id, to, text });
    input.value = '';
    await loadMessages(false);
  } catch (e) {
    s.fail('Sending')(e);
  }
}

// ---------------------------------------------------------------- wiring

function fillNumbers() {
  const select = $('chats-number');
  const keep = select.value;
  select.replaceChildren(s.h('option', { value: '' }, 'All numbers'),
    ...s.instances().map((i) => s.h('option', { value: i.id }, i.name)));
  select.value = keep;
}

function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(async () => {
    await loadChats();
    if (open) await loadMessages(false);
  }, REFRESH_DELAY_MS);
}

document.addEventListener('bz:session', (e) => { s = e.detail; });
document.addEventListener('bz:signout', () => {
  s = null; shown = false; chats = []; open = null; clearTimeout(refreshTimer);
});
document.addEventListener('bz:view', (e) => {
  shown = e.detail === 'chats';
  if (!shown) return;
  fillNumbers();
  loadChats();
});
document.addEventListener('bz:event', (e) => {
  if (shown && (e.detail.type === 'message.received' || e.detail.type === 'message.status')) refreshSoon();
});
$('chats-number').addEventListener('change', () => { open = null; renderMessages(false); loadChats(); });
$('chats-more').addEventListener('click', () => loadChats(true));
$('chat-older').addEventListener('click', () => loadMessages(true));
$('chat-read').addEventListener('click', markRead);
$('chat-reply').addEventListener('submit', reply);
