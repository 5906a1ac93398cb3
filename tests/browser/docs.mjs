// Browser test of the API docs page (`/docs`): starts the debug gateway on the simulated network,
// creates a tenant and a number with the admin token, then in headless Chromium opens /docs and
// checks that Swagger UI renders the served OpenAPI document (every operation, `POST
// /v1/messages` among them), that "Authorize" takes the tenant key, and that "Try it out" on
// `GET /v1/instances` calls this gateway with it and shows 200 with the number, and that the
// error codes render as a table under the `ErrorDetail` schema. Any script
// error, failed load or Content-Security-Policy violation fails it. Saves
// docs/screenshots/api-docs.png. Exits non-zero with a clear message on any failure.
//
//   node tests/browser/docs.mjs
//
// Environment: BZAPPER_BIN (default: target/debug/bzapper under CARGO_TARGET_DIR or the
// checkout), CHROMIUM (default /usr/bin/chromium), SCREENSHOTS_DIR (default docs/screenshots).

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.BZAPPER_BIN
  || path.join(process.env.CARGO_TARGET_DIR ? path.resolve(root, process.env.CARGO_TARGET_DIR) : path.join(root, 'target'), 'debug/bzapper');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.SCREENSHOTS_DIR || path.join(root, 'docs/screenshots');
const ADMIN = `docs-test-admin-${process.pid}-${Date.now()}`;
const OVERALL_TIMEOUT_MS = 120_000;

let passed = 0;
let gateway;
let gatewayLog = '';
let browser;
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

async function startGateway() {
  if (!existsSync(BIN)) fail(`no gateway binary at ${BIN}: run \`cargo build --bin bzapper\` first`);
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'bzapper-docs-'));
  gateway = spawn(BIN, ['serve', '--sim', '--listen', '127.0.0.1:0', '--data-dir', dataDir], {
    env: { ...process.env, BZAPPER_ADMIN_TOKEN: ADMIN, RUST_LOG: process.env.RUST_LOG || 'warn' },
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

let BASE;

async function call(method, p, token, body) {
  const res = await fetch(`${BASE}${p}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) fail(`${method} ${p} answered ${res.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

/** The operation block of `METHOD path` on the page. */
const operation = (method, p) => page.locator(`.opblock.opblock-${method.toLowerCase()}`)
  .filter({ has: page.locator(`.opblock-summary-path[data-path="${p}"]`) });

async function main() {
  BASE = await startGateway();
  const tenant = await call('POST', '/v1/tenants', ADMIN, { name: 'acme' });
  const KEY = tenant.api_key;
  await call('POST', '/v1/instances', KEY, { name: 'sales-1' });

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
  page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
  // A CSP violation is also reported to the console, but this names what was refused.
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const offOrigin = [];
  page.on('request', (r) => { if (!r.url().startsWith(BASE) && !r.url().startsWith('data:')) offOrigin.push(r.url()); });

  await step('/docs renders every operation of the served document', async () => {
    const res = await page.goto(`${BASE}/docs`);
    if (res.status() !== 200) fail(`/docs answered ${res.status()}`);
    await page.locator('.opblock').first().waitFor({ timeout: 20_000 });
    const doc = await call('GET', '/openapi.json', KEY);
    const expected = Object.values(doc.paths).reduce((n, item) => n + Object.keys(item).length, 0);
    const shown = await page.locator('.opblock').count();
    if (shown !== expected) fail(`the page shows ${shown} operations, the document has ${expected}`);
    if ((await operation('POST', '/v1/messages').count()) !== 1) fail('no POST /v1/messages operation on the page');
    const title = await page.locator('.info .title').textContent();
    if (!title.includes('bZapper')) fail(`the title is ${JSON.stringify(title)}`);
    const summary = await operation('POST', '/v1/messages').locator('.opblock-summary-description').textContent();
    if (summary.trim() !== 'Send a message') fail(`POST /v1/messages shows the summary ${JSON.stringify(summary)}`);
  });

  await step('"Authorize" takes the tenant key', async () => {
    await page.locator('.scheme-container .btn.authorize').click();
    const dialog = page.locator('.modal-ux');
    await dialog.locator('input').first().fill(KEY);
    await dialog.locator('.auth-btn-wrapper .btn.authorize').click();
    await dialog.locator('.auth-btn-wrapper .btn-done').click();
    await page.locator('.scheme-container .btn.authorize.locked').waitFor({ timeout: 5_000 });
  });

  await step('"Try it out" on GET /v1/instances calls this gateway with the key and shows 200', async () => {
    const op = operation('GET', '/v1/instances');
    await op.locator('.opblock-summary').click();
    await op.locator('.try-out__btn').click();
    const answered = page.waitForResponse((r) => r.url() === `${BASE}/v1/instances` && r.request().method() === 'GET');
    await op.locator('.btn.execute').click();
    const res = await answered;
    const auth = res.request().headers().authorization;
    if (auth !== `Bearer ${KEY}`) fail(`the request carried Authorization ${JSON.stringify(auth)}`);
    if (res.status() !== 200) fail(`GET /v1/instances answered ${res.status()}`);
    const status = op.locator('.live-responses-table .response .response-col_status').first();
    await status.waitFor({ timeout: 10_000 });
    const shown = (await status.textContent()).trim();
    if (!shown.startsWith('200')) fail(`the page shows the status ${JSON.stringify(shown)}`);
    const body = await op.locator('.live-responses-table .response-col_description pre').first().textContent();
    if (!body.includes('sales-1')) fail(`the response body shown lacks the number: ${body.slice(0, 200)}`);
  });

  await step('the error codes show as a table under the ErrorDetail schema', async () => {
    // OpenAPI 3.1: Swagger UI draws schemas with its JSON Schema 2020-12 components.
    const title = page.locator(':scope > .json-schema-2020-12-head .json-schema-2020-12__title', { hasText: /^ErrorDetail$/ });
    const model = page.locator('section.models > div > article.json-schema-2020-12').filter({ has: title });
    if ((await model.count()) !== 1) fail('no ErrorDetail schema on the page');
    await model.locator('.json-schema-2020-12-expand-deep-button').first().click();
    const row = model.locator('table tr', { hasText: 'rate_limited' });
    await row.first().waitFor({ timeout: 5_000 });
    if (!(await row.first().textContent()).includes('429')) fail('the rate_limited row does not say 429');
  });

  await step('no script error, failed load, CSP violation or request off this gateway', async () => {
    const csp = await page.evaluate(() => window.__csp);
    const all = [...problems, ...csp.map((v) => `CSP violation: ${v}`), ...offOrigin.map((u) => `request off this gateway: ${u}`)];
    if (all.length) fail(all.join('\n'));
  });

  await step('screenshot', async () => {
    mkdirSync(SHOTS, { recursive: true });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.waitForTimeout(300);
    await page.screenshot({ path: path.join(SHOTS, 'api-docs.png') });
  });
}

async function cleanup() {
  try { if (browser) await browser.close(); } catch (_) { /* already gone */ }
  if (gateway && gateway.exitCode === null) {
    gateway.kill('SIGTERM');
    await new Promise((r) => { const t = setTimeout(() => { gateway.kill('SIGKILL'); r(); }, 10_000); gateway.on('exit', () => { clearTimeout(t); r(); }); });
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}

const watchdog = setTimeout(async () => {
  console.error(`FAILED: the docs browser test did not finish in ${OVERALL_TIMEOUT_MS / 1000} s`);
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
    const shot = path.join(os.tmpdir(), `bzapper-docs-failure-${process.pid}.png`);
    try { await page.screenshot({ path: shot, fullPage: true }); console.error(`screenshot of the page: ${shot}`); } catch (_) { /* no page */ }
  }
  if (gatewayLog.trim()) console.error(`gateway log (last lines):\n${gatewayLog.trim().split('\n').slice(-20).join('\n')}`);
  console.log(`${passed} passed, 1 failed`);
  await cleanup();
  clearTimeout(watchdog);
  process.exit(1);
}
