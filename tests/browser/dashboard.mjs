// Browser test of the dashboard: starts the debug gateway on the simulated network, creates a
// tenant with the admin token, then drives the page in headless Chromium the way a person
// would: sign in, add a number, see its QR code, have the (simulated) phone scan it, see it turn
// connected without a reload, send a message from the form and see it sent, change a pool,
// add a webhook and re-send a delivery, use every number button, filter the live feed, run
// campaigns from an uploaded CSV file (preview with a bad row and a good file, create, watch
// the progress move, pause, resume, cancel), see the charts drawn from the sampled series, and
// take screenshots at desktop and phone width and of the campaigns and charts views. Exits
// non-zero with a clear message on any failure.
//
//   node tests/browser/dashboard.mjs
//
// Environment: BZAPPER_BIN (default $CARGO_TARGET_DIR/debug/bzapper, else target/), CHROMIUM (default /usr/bin/chromium),
// SCREENSHOTS_DIR (default docs/screenshots), SCREENSHOTS_EXTRA (a folder: also the sign-in page,
// the whole pages and dark mode, to look at while working on the page).

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, existsSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.BZAPPER_BIN || path.join(process.env.CARGO_TARGET_DIR || path.join(root, 'target'), 'debug/bzapper');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.SCREENSHOTS_DIR || path.join(root, 'docs/screenshots');
const EXTRA = process.env.SCREENSHOTS_EXTRA;
const ADMIN = `browser-test-admin-${process.pid}-${Date.now()}`;
const OVERALL_TIMEOUT_MS = 300_000;

let passed = 0;
let gateway;
let gatewayLog = '';
let browser;
let receiver;
let dataDir;
let page;

function fail(message) {
  throw new Error(message);
}

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
  } catch (e) {
    e.step = name;
    throw e;
  }
  passed += 1;
  console.log(`ok ${passed} - ${name} (${Date.now() - t0} ms)`);
}

async function until(what, fn, timeout = 15_000, every = 100) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) fail(`timed out after ${timeout} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

// ---------------------------------------------------------------- the gateway and a receiver

async function startGateway() {
  if (!existsSync(BIN)) fail(`no gateway binary at ${BIN}: run \`cargo build --bin bzapper\` first`);
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'bzapper-browser-'));
  // Series sampled every second: the charts have points within the test's minute.
  gateway = spawn(BIN, ['serve', '--sim', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--series-sample-secs', '1'], {
    // The webhook receiver below listens on loopback, which the outbound guard refuses unless allowed.
    env: { ...process.env, BZAPPER_ADMIN_TOKEN: ADMIN, BZAPPER_OUTBOUND_ALLOW: '127.0.0.0/8,::1,localhost', RUST_LOG: process.env.RUST_LOG || 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  gateway.stderr.on('data', (d) => { gatewayLog += d; });
  const lines = createInterface({ input: gateway.stdout });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the gateway did not print its address in 30 s; its log:\n${gatewayLog}`)), 30_000);
    gateway.on('exit', (code) => reject(new Error(`the gateway exited (${code}) before listening; its log:\n${gatewayLog}`)));
    lines.on('line', (line) => {
      gatewayLog += `${line}\n`;
      const m = line.match(/bZapper listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
}

/** A webhook receiver on loopback that records every delivery and answers 200. */
function startReceiver() {
  const hits = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      hits.push({ delivery: req.headers['x-bzapper-delivery'], event: req.headers['x-bzapper-event'], signature: req.headers['x-bzapper-signature'], body });
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, hits, url: `http://127.0.0.1:${server.address().port}/hook` })));
}

let BASE;

async function call(method, p, token, body) {
  const res = await fetch(`${BASE}${p}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  if (!res.ok) fail(`${method} ${p} answered ${res.status}: ${text}`);
  return json;
}

// ---------------------------------------------------------------- page helpers

const card = (name) => page.locator('.inst').filter({ has: page.locator('h3', { hasText: new RegExp(`^${name}$`) }) });

async function cardState(name) {
  const c = card(name);
  if ((await c.count()) !== 1) return null;
  return c.evaluate((el) => ({ id: el.dataset.id, status: el.dataset.status, reason: el.dataset.reason, pill: el.querySelector('[data-role=status]').textContent, phone: el.querySelector('[data-role=phone]').textContent, qr: !!el.querySelector('.qr-box') }));
}

async function waitCard(name, pred, what, timeout) {
  return until(`${name} to be ${what}`, async () => {
    const s = await cardState(name);
    return s && pred(s) ? s : null;
  }, timeout);
}

async function createInUi(name, pool) {
  await page.click('#add-toggle');
  await page.fill('#create-form [name=name]', name);
  if (pool) await page.fill('#create-form [name=pool]', pool);
  await page.click('#create-form [type=submit]');
  return waitCard(name, (s) => s.status === 'qr_pending', 'qr_pending');
}

async function qrShown(id) {
  return until(`the QR image of ${id}`, () => page.evaluate((iid) => {
    const img = document.querySelector(`.inst[data-id="${iid}"] img[data-role=qr]`);
    return img && img.complete && img.naturalWidth > 100 && img.src.startsWith('blob:') ? img.src : null;
  }, id));
}

async function clickAction(name, action, confirmDialog) {
  if (confirmDialog) page.once('dialog', (d) => d.accept());
  await card(name).locator(`[data-action=${action}]`).click();
}

/** Before a screenshot: no toast on top, no focus ring, at the top, animations done. */
async function settle() {
  await page.evaluate(() => {
    document.getElementById('toasts').replaceChildren();
    document.activeElement?.blur();
    window.scrollTo(0, 0);
  });
  await page.waitForTimeout(700);
}

async function noHorizontalScroll(width) {
  const sw = await page.evaluate(() => document.documentElement.scrollWidth);
  if (sw > width) {
    const wide = await page.evaluate((w) => [...document.querySelectorAll('body *')]
      .filter((el) => el.getBoundingClientRect().right > w + 1)
      .slice(0, 5).map((el) => `${el.tagName.toLowerCase()}.${el.className}`), width);
    fail(`the page scrolls sideways at ${width} px (scrollWidth ${sw}); too wide: ${wide.join(', ')}`);
  }
}

// ---------------------------------------------------------------- the test

async function main() {
  BASE = await startGateway();
  receiver = await startReceiver();
  const tenant = await call('POST', '/v1/tenants', ADMIN, { name: 'acme' });
  const KEY = tenant.api_key;

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  const desktop = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
  page = await desktop.newPage();
  const problems = [];
  const watch = (p, label) => {
    p.on('pageerror', (e) => problems.push(`page error (${label}): ${e.message}`));
    p.on('console', (m) => {
      // Answers the page expects and handles: a refused key (401), a number deleted (404) or
      // linked (409, no QR code any more) while it was being read. Anything else (a CSP
      // violation, a script error, a 5xx) fails the test.
      if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of (401|404|409)/.test(m.text())) {
        problems.push(`console error (${label}): ${m.text()}`);
      }
    });
  };
  watch(page, 'desktop');

  await step('the page loads with its CSP and shows the sign-in form', async () => {
    const res = await page.goto(`${BASE}/`);
    if (res.status() !== 200) fail(`GET / answered ${res.status()}`);
    const csp = res.headers()['content-security-policy'] || '';
    if (!csp.startsWith("default-src 'self'")) fail(`unexpected CSP: ${csp}`);
    await page.locator('#signin-form').waitFor({ state: 'visible' });
    if (EXTRA) {
      mkdirSync(EXTRA, { recursive: true });
      await page.screenshot({ path: path.join(EXTRA, 'signin.png') });
    }
  });

  await step('a wrong key is refused with a message', async () => {
    await page.fill('#signin-key', 'bzk_nottherightkeyatall_x');
    await page.click('#signin-submit');
    await until('the sign-in error', async () => /not accepted/.test(await page.textContent('#signin-error')));
    if (await page.isVisible('#app-view')) fail('the dashboard opened with a wrong key');
  });

  await step('the tenant key signs in and the live stream opens', async () => {
    await page.fill('#signin-key', KEY);
    await page.click('#signin-submit');
    await page.locator('#app-view').waitFor({ state: 'visible' });
    await page.locator('#live[data-state=open]').waitFor({ timeout: 10_000 });
    const stored = await page.evaluate(() => sessionStorage.getItem('bzapper.apiKey'));
    if (stored !== KEY) fail('the key is not kept in sessionStorage');
    await page.locator('#instances-empty').waitFor({ state: 'visible' });
  });

  await step('pools are listed and a strategy can be changed', async () => {
    await page.locator('#pool-list select[data-pool=default]').waitFor();
    await page.selectOption('#pool-list select[data-pool=default]', 'least_used');
    await until('the pool to change', async () => {
      const pools = await call('GET', '/v1/pools', KEY);
      return pools.items.find((p) => p.name === 'default')?.strategy === 'least_used';
    });
  });

  await step('a webhook is added and its secret shown once', async () => {
    await page.fill('#webhook-form [name=url]', receiver.url);
    await page.fill('#webhook-form [name=events]', 'instance.*, message.*');
    await page.click('#webhook-form [type=submit]');
    await page.locator('#webhook-secret').waitFor({ state: 'visible' });
    const secret = await page.textContent('#webhook-secret-value');
    if (!secret.startsWith('whsec_')) fail(`unexpected secret ${secret}`);
    await page.locator('.webhook', { hasText: receiver.url }).waitFor();
    await page.click('#webhook-secret-close');
  });

  let sales;
  await step('a number is created and its QR code appears', async () => {
    sales = await createInUi('sales-1');
    if (sales.pill !== 'QR pending') fail(`status pill says ${sales.pill}`);
    await qrShown(sales.id);
    await page.evaluate(() => { window.__sameDocument = true; });
  });

  await step('the phone scans it and the card turns connected without a reload', async () => {
    await call('POST', `/v1/sim/instances/${sales.id}/scan`, ADMIN, { phone: '+5511999990001' });
    const s = await waitCard('sales-1', (c) => c.status === 'connected', 'connected');
    if (s.phone !== '+5511999990001') fail(`the card shows phone ${s.phone}`);
    if (s.qr) fail('the QR code is still shown once connected');
    if (!(await page.evaluate(() => window.__sameDocument))) fail('the page was reloaded');
    await page.locator('#feed-list li[data-type="instance.connected"]').waitFor();
  });

  let messageId;
  await step('a message sent from the form is accepted and then sent', async () => {
    await page.fill('#send-form [name=to]', '+55 11 98888-7777');
    await page.fill('#send-form [name=text]', 'Hello from the dashboard');
    await page.selectOption('#send-from', sales.id);
    await page.click('#send-submit');
    const item = page.locator('#sent-list .sent-item').first();
    await item.waitFor();
    messageId = await item.locator('[data-role=msg-id]').textContent();
    if (!messageId) fail('no message id shown');
    await until('the message to be sent', async () => /^(sent|delivered|read)$/.test(await item.locator('[data-role=msg-status]').textContent()), 30_000);
    await page.locator('#feed-list li[data-type="message.status"]', { hasText: '→ sent' }).waitFor();
    await until('the sent count of today', async () => /1 sent/.test(await card('sales-1').locator('[data-role=stats]').textContent()));
  });

  await step('each number says why it rests, with a legend', async () => {
    // Just after its send, sales-1 pauses (its human gap) or is ready again; never offline.
    const now = await card('sales-1').locator('[data-role=resting]').textContent();
    if (!/^(pausing|ready to send|at its cap|warming cap)$/.test(now)) fail(`sales-1 rests as "${now}"`);
    const pending = page.locator('.inst[data-status=qr_pending] [data-role=resting]').first();
    if ((await pending.count()) && (await pending.textContent()) !== 'offline') fail('a QR-pending number is not offline');
    if (!/quiet hours/.test(await page.locator('#resting-legend').textContent())) fail('no resting legend');
  });

  await step('an inbound message shows in the feed', async () => {
    await call('POST', `/v1/sim/instances/${sales.id}/inbound`, ADMIN, { from: '+5511977776666', text: 'Hi! Is my order on its way?' });
    await page.locator('#feed-list li[data-type="message.received"]', { hasText: 'Is my order on its way?' }).waitFor();
  });

  await step('connect, disconnect, log out and delete work from the card', async () => {
    const t = await createInUi('temp-4', 'trial');
    await qrShown(t.id);
    await clickAction('temp-4', 'disconnect');
    await waitCard('temp-4', (c) => c.status === 'disconnected' && !c.qr, 'disconnected');
    await clickAction('temp-4', 'connect');
    await waitCard('temp-4', (c) => c.status === 'qr_pending', 'qr_pending again');
    await qrShown(t.id);
    await call('POST', `/v1/sim/instances/${t.id}/scan`, ADMIN, { phone: '+5511999990004' });
    await waitCard('temp-4', (c) => c.status === 'connected', 'connected');
    await clickAction('temp-4', 'logout', true);
    await waitCard('temp-4', (c) => c.status === 'disconnected' && c.reason === 'logged_out', 'logged out');
    await clickAction('temp-4', 'delete', true);
    await until('temp-4 to disappear', async () => (await card('temp-4').count()) === 0);
    const list = await call('GET', '/v1/instances', KEY);
    if (list.items.some((i) => i.id === t.id)) fail('temp-4 still exists');
    await until('pool trial in the list', async () => (await page.locator('#pool-list select[data-pool=trial]').count()) === 1);
  });

  await step('a banned number is shown as banned', async () => {
    const b = await call('POST', '/v1/instances', KEY, { name: 'backup-3', pool: 'trial', warming_days: 3 });
    await waitCard('backup-3', (c) => c.status === 'qr_pending', 'qr_pending');
    await call('GET', `/v1/instances/${b.id}/qr`, KEY);
    await call('POST', `/v1/sim/instances/${b.id}/scan`, ADMIN, { phone: '+5511999990003' });
    await waitCard('backup-3', (c) => c.status === 'connected', 'connected');
    await call('POST', `/v1/sim/instances/${b.id}/drop`, ADMIN, { reason: 'banned' });
    const s = await waitCard('backup-3', (c) => c.reason === 'banned', 'banned');
    if (s.pill !== 'banned') fail(`the pill says ${s.pill}`);
  });

  await step('a second number waits with its QR code', async () => {
    const s = await createInUi('support-2');
    await qrShown(s.id);
  });

  await step('webhook deliveries are listed and one can be re-sent', async () => {
    const hook = page.locator('.webhook', { hasText: receiver.url });
    await hook.locator('[data-action=deliveries]').click();
    const delivered = hook.locator('.delivery[data-status=delivered]');
    await until('a delivered delivery', async () => {
      if ((await delivered.count()) > 0) return true;
      await hook.getByRole('button', { name: 'Refresh' }).click();
      return false;
    }, 20_000, 500);
    const first = delivered.first();
    const id = await first.getAttribute('data-id');
    const before = receiver.hits.filter((x) => x.delivery === id).length;
    if (before < 1) fail(`the receiver never got delivery ${id}`);
    await first.locator('[data-action=retry]').click();
    await until(`delivery ${id} to arrive again`, () => receiver.hits.filter((x) => x.delivery === id).length > before);
  });

  await step('the feed filters by type prefix', async () => {
    await page.fill('#feed-filter', 'message.');
    const types = await page.$$eval('#feed-list li', (els) => els.map((e) => e.dataset.type));
    if (!types.length || types.some((t) => !t.startsWith('message.'))) fail(`filtered feed shows ${types.join(', ')}`);
    await page.fill('#feed-filter', 'instance.connected');
    const t2 = await page.$$eval('#feed-list li', (els) => els.map((e) => e.dataset.type));
    if (!t2.length || t2.some((t) => t !== 'instance.connected')) fail(`filtered feed shows ${t2.join(', ')}`);
    await page.fill('#feed-filter', '');
    const all = await page.$$eval('#feed-list li', (els) => els.length);
    if (all <= t2.length) fail('clearing the filter did not bring the other events back');
  });

  const campaignCard = (name) => page.locator('.campaign').filter({ has: page.locator('h3', { hasText: new RegExp(`^${name}$`) }) });
  const campaignOut = async (name) => {
    const m = /^(\d+) of (\d+) out/.exec(await campaignCard(name).locator('[data-role=counts]').textContent());
    return m ? Number(m[1]) : -1;
  };
  const campaignStatus = (name) => campaignCard(name).locator('[data-role=status]').textContent();
  const csvFile = (name, text) => {
    const p = path.join(dataDir, name);
    writeFileSync(p, text);
    return p;
  };
  const rows = (n, from) => Array.from({ length: n }, (_, i) => `+55119777${String(from + i).padStart(5, '0')},${['Ana', 'Bo', 'Cy', 'Di', 'Ed'][i % 5]} ${i + 1},${100 + i}`).join('\n');

  await step('campaigns: a CSV file with a bad row is previewed with its line, and nothing can be created', async () => {
    // sales-1 sends quickly (no warming, short gaps), so the campaign moves within the test.
    await call('PATCH', `/v1/instances/${sales.id}`, KEY, { warming_days: 0, limits: { min_gap_ms: 200, max_gap_ms: 600, per_minute: 120, per_hour: 2000, per_day: 6000 } });
    await page.click('#tabs a[data-tab=campaigns]');
    await page.locator('#campaigns-view').waitFor({ state: 'visible' });
    if (await page.isVisible('#app-view')) fail('the numbers view is still shown');
    await page.locator('#campaigns-empty').waitFor({ state: 'visible' });
    await page.fill('#campaign-form [name=name]', 'March promo');
    await page.fill('#campaign-form [name=template]', '{Hi|Hello} {{name}}, your code is {{code}}');
    await page.setInputFiles('#campaign-file', csvFile('bad.csv', `phone,name,code\n${rows(3, 0)}\nnot-a-phone,Zed,1\n`));
    const problem = page.locator('#campaign-preview .problems li').first();
    await problem.waitFor();
    if ((await problem.getAttribute('data-line')) !== '5') fail(`the problem is on line ${await problem.getAttribute('data-line')}, not 5`);
    if (!(await page.isDisabled('#campaign-create'))) fail('a file with a problem can be created');
  });

  await step('campaigns: a good file shows the texts as they will be sent, and is created', async () => {
    await page.setInputFiles('#campaign-file', csvFile('promo.csv', `phone,name,code\r\n${rows(20, 0)}\r\n`));
    await until('a preview without problems', async () => (await page.getAttribute('#campaign-preview', 'data-ok')) === 'true');
    const texts = await page.$$eval('#campaign-preview .previews .preview-text', (els) => els.map((e) => e.textContent));
    if (texts.length !== 5) fail(`${texts.length} previews shown`);
    if (!/^(Hi|Hello) Ana 1, your code is 100$/.test(texts[0])) fail(`first preview: ${texts[0]}`);
    if (!/20 recipients/.test(await page.textContent('#campaign-preview [data-role=summary]'))) fail('the preview does not count 20 recipients');
    if (EXTRA) await page.screenshot({ path: path.join(EXTRA, 'campaign-preview.png'), fullPage: true });
    await page.click('#campaign-create');
    await campaignCard('March promo').waitFor();
    const list = await call('GET', '/v1/campaigns', KEY);
    if (list.items.length !== 1 || list.items[0].totals.recipients !== 20) fail(`the gateway has ${JSON.stringify(list.items.map((c) => c.totals))}`);
  });

  await step('campaigns: the progress moves (screenshot); pause, resume and cancel work from the card', async () => {
    const first = await until('a first campaign send', async () => { const n = await campaignOut('March promo'); return n >= 1 ? n : null; }, 30_000);
    await campaignCard('March promo').locator('[data-action=pause]').click();
    await until('paused', async () => (await campaignStatus('March promo')) === 'paused');
    await campaignCard('March promo').locator('[data-action=resume]').click();
    await until('running again', async () => /^(running|scheduled)$/.test(await campaignStatus('March promo')));
    await until('the progress to move on', async () => (await campaignOut('March promo')) > first, 30_000);
    if (!/finish ≈/.test(await campaignCard('March promo').locator('[data-role=finish]').textContent())) fail('no finish estimate');
    // The screenshot shows it running, with its estimate.
    mkdirSync(SHOTS, { recursive: true });
    await settle();
    await noHorizontalScroll(1280);
    await page.screenshot({ path: path.join(SHOTS, 'dashboard-campaigns.png'), fullPage: true });
    page.once('dialog', (d) => d.accept());
    await campaignCard('March promo').locator('[data-action=cancel]').click();
    await until('canceled', async () => (await campaignStatus('March promo')) === 'canceled');
    if ((await campaignCard('March promo').locator('[data-action]').count()) !== 0) fail('an ended campaign still has buttons');
    const c = (await call('GET', '/v1/campaigns', KEY)).items[0];
    if (c.status !== 'canceled') fail(`the gateway says ${c.status}`);
    // A second one runs to its end.
    await page.fill('#campaign-form [name=name]', 'Welcome back');
    await page.fill('#campaign-form [name=template]', 'Welcome back, {{name}}!');
    await page.setInputFiles('#campaign-file', csvFile('welcome.csv', `phone,name,code\n${rows(6, 100)}\n`));
    await until('a preview without problems', async () => (await page.getAttribute('#campaign-preview', 'data-ok')) === 'true');
    await page.click('#campaign-create');
    await until('the second campaign to finish', async () => (await campaignStatus('Welcome back')) === 'finished', 60_000);
    if ((await campaignOut('Welcome back')) !== 6) fail('the finished campaign does not show 6 of 6 out');
  });

  await step('charts: sends per number, health and queue depth are drawn from the sampled series', async () => {
    await page.click('#tabs a[data-tab=charts]');
    await page.locator('#charts-view').waitFor({ state: 'visible' });
    await page.selectOption('#charts-range', '15m');
    const points = (id) => page.getAttribute(`#${id} [data-role=chart]`, 'data-points').then((v) => Number(v || 0));
    await until('bars of sends', async () => (await points('chart-sends')) >= 2, 20_000, 500);
    await until('health points', async () => (await points('chart-health')) >= 2, 20_000, 500);
    await until('queue depth points', async () => (await points('chart-queue')) >= 2, 20_000, 500);
    // What the bars show is what the gateway counted for sales-1.
    await until('the series to count every send of sales-1', async () => {
      const series = await call('GET', `/v1/stats/series?metric=sends&step=3600&instance_id=${sales.id}`, KEY);
      const counted = series.series[0].points.reduce((n, p) => n + p.value, 0);
      const sent = (await call('GET', `/v1/instances/${sales.id}`, KEY)).stats.sent_today;
      return counted === sent && sent > 6;
    }, 20_000, 500);
    const legend = await page.textContent('#chart-sends .chart-legend');
    if (!legend.includes('sales-1')) fail(`the legend says ${legend}`);
    await settle();
    await noHorizontalScroll(1280);
    await page.screenshot({ path: path.join(SHOTS, 'dashboard-charts.png'), fullPage: true });
    await page.click('#tabs a[data-tab=numbers]');
    await page.locator('#app-view').waitFor({ state: 'visible' });
  });

  await step('chats: a contact writes, the chat shows it unread; a reply from the chat and "Mark read" (screenshot)', async () => {
    const contact = '+5511966660001';
    const inbound = await call('POST', `/v1/sim/instances/${sales.id}/inbound`, ADMIN, { from: contact, text: 'Is the promo still on?', push_name: 'Rita' });
    await page.click('#tabs a[data-tab=chats]');
    await page.locator('#chats-view').waitFor({ state: 'visible' });
    // Found by the phone: the push name is the one of the contact's latest message.
    const item = page.locator('#chat-list .chat-item', { hasText: contact });
    await until('the chat to be listed', async () => {
      if ((await item.count()) > 0) return true;
      await page.selectOption('#chats-number', sales.id); // a new load
      return false;
    }, 20_000, 500);
    if ((await item.locator('[data-role=unread]').textContent()) !== '1') fail('the chat does not show 1 unread');
    await item.click();
    await page.locator('#chat-messages .msg.in', { hasText: 'Is the promo still on?' }).waitFor();
    await page.fill('#chat-reply-text', 'Yes, until Friday!');
    await page.click('#chat-reply button[type=submit]');
    await page.locator('#chat-messages .msg.out', { hasText: 'Yes, until Friday!' }).waitFor();
    const sent = (await call('GET', `/v1/chats/${encodeURIComponent(contact)}/messages?instance_id=${sales.id}`, KEY)).items;
    if (sent[0].direction !== 'out' || sent[0].text !== 'Yes, until Friday!') fail(`the gateway's newest message is ${JSON.stringify(sent[0])}`);
    if (sent[1].whatsapp_id !== inbound.message_id) fail('the inbound message is not second newest');
    // Another message, then "Mark read" clears the badge.
    await call('POST', `/v1/sim/instances/${sales.id}/inbound`, ADMIN, { from: contact, text: 'Great, thanks' });
    await page.locator('#chat-messages .msg.in', { hasText: 'Great, thanks' }).waitFor({ timeout: 20_000 });
    await page.locator('#chat-read').waitFor({ state: 'visible' });
    await page.click('#chat-read');
    await until('the unread badge to go', async () => (await item.count()) === 1 && (await item.locator('[data-role=unread]').count()) === 0);
    const chat = (await call('GET', `/v1/chats?instance_id=${sales.id}`, KEY)).items.find((c) => c.phone === contact);
    if (!chat || chat.unread_count !== 0) fail(`the gateway says ${JSON.stringify(chat)}`);
    await settle();
    await noHorizontalScroll(1280);
    await page.screenshot({ path: path.join(SHOTS, 'dashboard-chats.png'), fullPage: true });
    await page.click('#tabs a[data-tab=numbers]');
    await page.locator('#app-view').waitFor({ state: 'visible' });
  });

  await step('calls: the "Calls" dialog of a card saves the call settings, and a call is then rejected', async () => {
    await page.locator(`.inst[data-id="${sales.id}"] [data-action=calls]`).click();
    await page.locator('#call-settings').waitFor({ state: 'visible' });
    await page.check('#call-settings [name=reject_calls]');
    await page.fill('#call-settings [name=reject_call_message]', 'We do not take calls here — please write.');
    await page.click('#call-settings button[type=submit]');
    await page.locator('#call-settings').waitFor({ state: 'detached' });
    const inst = await call('GET', `/v1/instances/${sales.id}`, KEY);
    if (inst.reject_calls !== true || inst.reject_call_message !== 'We do not take calls here — please write.' || inst.always_online !== false) {
      fail(`the gateway has ${JSON.stringify({ r: inst.reject_calls, m: inst.reject_call_message, o: inst.always_online })}`);
    }
    const { call_id } = await call('POST', `/v1/sim/instances/${sales.id}/call`, ADMIN, { from: '+5511966660002' });
    await until('the call to be rejected', async () => {
      const outbox = await call('GET', `/v1/sim/instances/${sales.id}/outbox`, ADMIN);
      return (outbox.items || outbox).some((e) => e.rejected_call === call_id);
    }, 20_000, 250);
  });

  await step('desktop screenshot (1280×800), no sideways scroll', async () => {
    mkdirSync(SHOTS, { recursive: true });
    await settle();
    await noHorizontalScroll(1280);
    await page.screenshot({ path: path.join(SHOTS, 'dashboard-desktop.png'), fullPage: true });
  });

  await step('phone width (375×812): usable, no sideways scroll, screenshot', async () => {
    const phone = await browser.newContext({ viewport: { width: 375, height: 812 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, colorScheme: 'light' });
    const desktopPage = page;
    page = await phone.newPage();
    watch(page, 'phone');
    await page.goto(`${BASE}/`);
    await page.fill('#signin-key', KEY);
    await page.click('#signin-submit');
    await waitCard('sales-1', (c) => c.status === 'connected', 'connected (phone)');
    const s2 = await cardState('support-2');
    await qrShown(s2.id);
    await page.locator('#live[data-state=open]').waitFor();
    await settle();
    await noHorizontalScroll(375);
    await page.screenshot({ path: path.join(SHOTS, 'dashboard-phone.png') });
    if (EXTRA) {
      await page.screenshot({ path: path.join(EXTRA, 'phone-full.png'), fullPage: true });
      await page.emulateMedia({ colorScheme: 'dark' });
      await page.waitForTimeout(300);
      await page.screenshot({ path: path.join(EXTRA, 'phone-dark.png'), fullPage: true });
      await desktopPage.emulateMedia({ colorScheme: 'dark' });
      await desktopPage.waitForTimeout(300);
      await desktopPage.screenshot({ path: path.join(EXTRA, 'desktop-dark.png'), fullPage: true });
      await desktopPage.emulateMedia({ colorScheme: 'light' });
    }
    await phone.close();
    page = desktopPage;
  });

  await step('sign out forgets the key', async () => {
    await page.click('#signout');
    await page.locator('#signin-form').waitFor({ state: 'visible' });
    if (await page.evaluate(() => sessionStorage.getItem('bzapper.apiKey'))) fail('the key is still in sessionStorage');
    await page.reload();
    await page.locator('#signin-form').waitFor({ state: 'visible' });
  });

  await step('no script error or CSP violation on the page', async () => {
    if (problems.length) fail(problems.join('\n'));
  });
}

async function cleanup() {
  try { if (browser) await browser.close(); } catch (_) { /* already gone */ }
  if (receiver) receiver.server.close();
  if (gateway && gateway.exitCode === null) {
    gateway.kill('SIGTERM');
    await new Promise((r) => { const t = setTimeout(() => { gateway.kill('SIGKILL'); r(); }, 10_000); gateway.on('exit', () => { clearTimeout(t); r(); }); });
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}

const watchdog = setTimeout(async () => {
  console.error(`FAILED: the browser test did not finish in ${OVERALL_TIMEOUT_MS / 1000} s`);
  await cleanup();
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

try {
  await main();
  console.log(`${passed} passed, 0 failed`);
  await cleanup();
  clearTimeout(watchdog);
  process.exit(0);
} catch (e) {
  console.error(`\nFAILED${e.step ? ` at "${e.step}"` : ''}: ${e.message}`);
  if (page) {
    const shot = path.join(os.tmpdir(), `bzapper-dashboard-failure-${process.pid}.png`);
    try { await page.screenshot({ path: shot, fullPage: true }); console.error(`screenshot of the page: ${shot}`); } catch (_) { /* no page */ }
  }
  if (gatewayLog.trim()) console.error(`gateway log (last lines):\n${gatewayLog.trim().split('\n').slice(-20).join('\n')}`);
  console.log(`${passed} passed, 1 failed`);
  await cleanup();
  clearTimeout(watchdog);
  process.exit(1);
}
