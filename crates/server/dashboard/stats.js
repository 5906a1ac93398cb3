// The Charts view: sends per number, health over time and queue depth per pool, read from
// GET /v1/stats/series and drawn by charts.js; read again every 15 s while shown.

// Imported by path: a static import cannot carry the page's ?v=, so charts.js is revalidated
// (no-cache, ETag) rather than cached for a year.
import { barChart, lineChart } from './charts.js';

const RANGES = {
  // [span, step]: steps are multiples of a minute, so any sample interval that divides a
  // minute answers them; a step the gateway refuses falls back to its own default.
  '15m': [15 * 60, 15],
  '1h': [3600, 60],
  '6h': [6 * 3600, 300],
  '24h': [86400, 3600],
  '7d': [7 * 86400, 3 * 3600],
  '30d': [30 * 86400, 12 * 3600],
};
const REFRESH_MS = 15000;

let session = null;
let timer = null;
let shown = false;

async function series(metric, span, step) {
  const from = new Date(Date.now() - span * 1000).toISOString();
  const q = new URLSearchParams({ metric, from, step: String(step) });
  try {
    return await session.api('GET', `/v1/stats/series?${q}`);
  } catch (e) {
    if (e.status !== 422) throw e;
    q.delete('step'); // the sample interval does not divide this step: the gateway's default
    return session.api('GET', `/v1/stats/series?${q}`);
  }
}

function lines(answer) {
  return answer.series.map((s) => ({
    label: s.instance_id ? (s.name || session.instanceName(s.instance_id)) : s.pool,
    points: s.points.map((p) => ({ at: new Date(p.at).getTime(), value: p.value })),
  }));
}

function range(answer) {
  return { from: new Date(answer.from).getTime(), to: new Date(answer.to).getTime(), step: answer.step };
}

function stepText(step) {
  if (step % 3600 === 0) return step === 3600 ? 'per hour' : `per ${step / 3600} h`;
  if (step % 60 === 0) return step === 60 ? 'per minute' : `per ${step / 60} min`;
  return `per ${step} s`;
}

async function load() {
  if (!session || !shown) return;
  clearTimeout(timer);
  const [span, step] = RANGES[document.getElementById('charts-range').value] || RANGES['1h'];
  try {
    const [sends, health, queue] = await Promise.all([
      series('sends', span, step), series('health', span, step), series('queue_depth', span, step),
    ]);
    const chart = (id) => document.querySelector(`#${id} [data-role=chart]`);
    document.querySelector('#chart-sends [data-role=step]').textContent = stepText(sends.step);
    barChart(chart('chart-sends'), { series: lines(sends), ...range(sends) });
    lineChart(chart('chart-health'), { series: lines(health), ...range(health), yMax: 100 });
    lineChart(chart('chart-queue'), { series: lines(queue), ...range(queue) });
    document.getElementById('charts-view').dataset.loaded = String(Date.now());
  } catch (e) {
    session.fail('Loading the charts')(e);
  } finally {
    if (shown) timer = setTimeout(load, REFRESH_MS);
  }
}

document.addEventListener('bz:session', (e) => { session = e.detail; });
document.addEventListener('bz:signout', () => { session = null; shown = false; clearTimeout(timer); });
document.addEventListener('bz:view', (e) => {
  shown = e.detail === 'charts';
  if (shown) load(); else clearTimeout(timer);
});
document.getElementById('charts-range').addEventListener('change', load);
window.addEventListener('resize', () => { if (shown) load(); });
