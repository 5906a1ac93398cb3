// Small hand-written SVG charts for the dashboard: stacked bars (counts per step) and lines
// (gauges over time), with time and value axes, a legend and a tooltip per mark (<title>).
// No chart library: the page must work offline under a strict CSP, and these two shapes are
// a few dozen lines each. Everything is built with DOM calls, never parsed from strings.

const SVG = 'http://www.w3.org/2000/svg';
/** Series colours, in order (distinguishable in light and dark mode). */
export const PALETTE = ['#0f766e', '#2563eb', '#d97706', '#9333ea', '#dc2626', '#0891b2', '#65a30d', '#db2777', '#4b5563', '#ca8a04'];
const HEIGHT = 220;
const PAD = { top: 12, right: 12, bottom: 28, left: 40 };

function el(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const c of children) if (c) e.append(c);
  return e;
}

function title(text) {
  const t = document.createElementNS(SVG, 'title');
  t.textContent = text;
  return t;
}

/** A round upper bound for the value axis (1, 2, 5 × 10ⁿ). */
function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function timeLabel(ms, spanMs) {
  const d = new Date(ms);
  if (spanMs > 2 * 86400000) return d.toLocaleDateString([], { month: 'short', day: 'numeric' });
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function frame(container, from, to, yMax, yUnit) {
  const width = Math.max(280, Math.round(container.clientWidth || 600));
  const svg = el('svg', { viewBox: `0 0 ${width} ${HEIGHT}`, width: '100%', height: HEIGHT, role: 'img', class: 'chart-svg' });
  const w = width - PAD.left - PAD.right;
  const h = HEIGHT - PAD.top - PAD.bottom;
  const x = (ms) => PAD.left + ((ms - from) / (to - from)) * w;
  const y = (v) => PAD.top + h - (v / yMax) * h;
  const axes = el('g', { class: 'axes' });
  for (const f of [0, 0.5, 1]) {
    const v = yMax * f;
    axes.append(el('line', { x1: PAD.left, x2: PAD.left + w, y1: y(v), y2: y(v), class: 'grid' }));
    const label = el('text', { x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end' });
    label.textContent = `${Number.isInteger(v) ? v : v.toFixed(1)}${yUnit || ''}`;
    axes.append(label);
  }
  const ticks = Math.max(2, Math.min(6, Math.floor(w / 110)));
  for (let i = 0; i <= ticks; i += 1) {
    const ms = from + ((to - from) * i) / ticks;
    const t = el('text', { x: x(ms), y: HEIGHT - 8, 'text-anchor': i === 0 ? 'start' : i === ticks ? 'end' : 'middle' });
    t.textContent = timeLabel(ms, to - from);
    axes.append(t);
  }
  svg.append(axes);
  return { svg, x, y, w, h };
}

function legend(series) {
  const ul = document.createElement('ul');
  ul.className = 'chart-legend';
  series.forEach((s, i) => {
    const li = document.createElement('li');
    const sw = document.createElement('span');
    sw.className = 'swatch';
    sw.style.background = PALETTE[i % PALETTE.length];
    li.append(sw, document.createTextNode(s.label));
    ul.append(li);
  });
  return ul;
}

function empty(container, text) {
  const p = document.createElement('p');
  p.className = 'chart-empty';
  p.textContent = text || 'No samples in this range yet.';
  container.replaceChildren(p);
}

/**
 * Stacked bars, one slot per step: `series` is [{label, points: [{at: ms, value}]}].
 * The container gets the SVG and a legend; `data-points` says how many marks were drawn.
 */
export function barChart(container, { series, from, to, step, what = 'sent' }) {
  const stepMs = step * 1000;
  const slots = new Map(); // slot start -> [value per series]
  series.forEach((s, i) => {
    for (const p of s.points) {
      const v = slots.get(p.at) || new Array(series.length).fill(0);
      v[i] += p.value;
      slots.set(p.at, v);
    }
  });
  const total = [...slots.values()].map((v) => v.reduce((a, b) => a + b, 0));
  if (!series.length || !total.some((t) => t > 0)) return empty(container);
  const yMax = niceMax(Math.max(...total));
  const f = frame(container, from, to, yMax);
  const slotW = Math.max(2, (f.w * stepMs) / (to - from) - 2);
  let marks = 0;
  for (const [at, values] of slots) {
    let base = 0;
    values.forEach((v, i) => {
      if (v <= 0) return;
      const top = f.y(base + v);
      const rect = el('rect', { x: f.x(at) + 1, y: top, width: slotW, height: Math.max(1, f.y(base) - top), fill: PALETTE[i % PALETTE.length], class: 'mark' },
        title(`${series[i].label} · ${timeLabel(at, to - from)} · ${v} ${what}`));
      f.svg.append(rect);
      base += v;
      marks += 1;
    });
  }
  container.dataset.points = String(marks);
  container.replaceChildren(f.svg, legend(series));
}

/**
 * Lines over time, broken where a step has no sample: `series` as for `barChart`; `yMax` fixes
 * the value axis (100 for health), else it fits the data.
 */
export function lineChart(container, { series, from, to, step, yMax, unit = '' }) {
  const values = series.flatMap((s) => s.points.map((p) => p.value));
  if (!values.length) return empty(container);
  const top = yMax || niceMax(Math.max(...values));
  const f = frame(container, from, to, top);
  const stepMs = step * 1000;
  let marks = 0;
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    let run = [];
    const flush = () => {
      if (run.length > 1) {
        f.svg.append(el('polyline', { points: run.map((p) => `${f.x(p.at)},${f.y(p.value)}`).join(' '), fill: 'none', stroke: color, 'stroke-width': 2, 'stroke-linejoin': 'round', class: 'mark' }));
      }
      run = [];
    };
    let last = null;
    for (const p of s.points) {
      if (last !== null && p.at - last > stepMs * 1.5) flush();
      run.push(p);
      last = p.at;
      f.svg.append(el('circle', { cx: f.x(p.at), cy: f.y(p.value), r: s.points.length > 60 ? 1.5 : 3, fill: color, class: 'mark' },
        title(`${s.label} · ${timeLabel(p.at, to - from)} · ${p.value}${unit}`)));
      marks += 1;
    }
    flush();
  });
  container.dataset.points = String(marks);
  container.replaceChildren(f.svg, legend(series));
}
