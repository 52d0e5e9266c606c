// A time chart drawn in SVG, no library: several series, one y axis per unit (alternately
// left and right), raw points as lines (steps for integers and booleans) or buckets as a
// min–max band with the mean line, background bands (work orders, downtimes), and pointer
// handling for box zoom, wheel zoom, pan and hover. Bad points are never drawn as values:
// they break the line and get a red tick under the plot.

import { s } from './dom.js';

export const PALETTE = ['#1f6fb4', '#d9730d', '#2a8a43', '#8e44ad', '#0e8f9e', '#8c564b', '#c2417f', '#5d6d7e'];

const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
/** Steps for time ticks and for buckets: what people count in. */
export const TIME_STEPS = [SEC, 2 * SEC, 5 * SEC, 10 * SEC, 15 * SEC, 30 * SEC, MIN, 2 * MIN, 5 * MIN, 10 * MIN, 15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY];

/** The first step of `steps` at least `ms` (the last one if none is). */
export function stepAtLeast(ms, steps = TIME_STEPS) {
  return steps.find((x) => x >= ms) ?? steps[steps.length - 1];
}

/** A duration in ms as the API writes it: `250ms`, `15s`, `5m`, `2h`, `1d`. */
export function durationText(ms) {
  for (const [unit, size] of [['d', DAY], ['h', HOUR], ['m', MIN], ['s', SEC]]) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

const LANE_H = 18;

/** 1, 2 or 5 × 10^k: a tick step giving about `count` ticks over `span`. */
function niceStep(span, count) {
  const raw = span / Math.max(count, 1);
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((x) => x >= raw);
}

/** Tick labels of an axis: in k, M or G when that needs at most two decimals (19.4k). */
function tickLabels(values, step, lo, hi) {
  const top = Math.max(Math.abs(lo), Math.abs(hi));
  const places = (scale) => Math.max(0, -Math.floor(Math.log10(step / scale) + 1e-9));
  let [scale, suffix] = [[1e9, 'G'], [1e6, 'M'], [1e3, 'k'], [1, '']].find(([x]) => top >= 10 * x || x === 1);
  if (places(scale) > 2) [scale, suffix] = [1, ''];
  return values.map((v) => (v / scale).toFixed(Math.min(places(scale), 7)) + suffix);
}

const pad2 = (n) => String(n).padStart(2, '0');
function timeLabel(t, step) {
  const d = new Date(t);
  const clock = `${pad2(d.getHours())}:${pad2(d.getMinutes())}${step < MIN ? ':' + pad2(d.getSeconds()) : ''}`;
  const day = `${pad2(d.getDate())}.${pad2(d.getMonth() + 1)}.`;
  if (step >= DAY) return day;
  return d.getHours() === 0 && d.getMinutes() === 0 && d.getSeconds() === 0 ? `${day} ${clock}` : clock;
}

/** The y domain of values, padded 5 %; a flat series gets a band around its value. */
function domain(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo === Infinity) return [0, 1];
  if (hi - lo < 1e-9 * Math.max(1, Math.abs(hi))) {
    const d = Math.abs(hi) * 0.05 || 1;
    return [lo - d, hi + d];
  }
  const p = (hi - lo) * 0.05;
  return [lo - p, hi + p];
}

/**
 * Draws the chart. `view`: {width, height, from, to (ms)}. `series`: [{path, label, color,
 * axis (key), unit, step, mode 'raw'|'buckets', points [{t, v (number or null: a gap), q}],
 * buckets [{t (middle), min, mean, max}], data (what the drawing shows, for data-points)}].
 * `bands`: [{kind, id, start, end (ms), label, title, lane}]. Returns the geometry for hover
 * and pointer handling: {f (frame), x(t), t(x), axes}.
 */
export function draw(svg, view, series, bands, lanes) {
  const { width, height, from, to } = view;
  const axes = [];
  for (const sr of series) {
    let a = axes.find((x) => x.key === sr.axis);
    if (!a) axes.push((a = { key: sr.axis, unit: sr.unit, series: [], values: [] }));
    a.series.push(sr);
    if (sr.mode === 'buckets') for (const b of sr.buckets) b.mean !== null && a.values.push(b.min, b.max);
    else for (const p of sr.points) if (p.v !== null && p.t >= from && p.t <= to) a.values.push(p.v);
  }
  axes.forEach((a, i) => (a.side = i % 2 ? 'right' : 'left'));
  const f = { t: 8 + LANE_H * lanes, b: Math.max(height - 26, 40 + LANE_H * lanes) };
  const ticksWanted = Math.max(2, Math.round((f.b - f.t) / 56));
  for (const a of axes) {
    const [lo, hi] = domain(a.values);
    const step = niceStep(hi - lo, ticksWanted);
    const values = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) values.push(v);
    const labels = tickLabels(values, step, lo, hi);
    Object.assign(a, { lo, hi, step, ticks: values.map((v, i) => [v, labels[i]]) });
    // Wide enough for its longest label and the unit written along it.
    a.w = Math.min(Math.max(...a.ticks.map(([, text]) => text.length * 7.2), 20) + 30, 120);
    a.y = (v) => f.b - ((v - lo) / (hi - lo)) * (f.b - f.t);
  }
  let edge = 10 + axes.filter((a) => a.side === 'left').reduce((sum, a) => sum + a.w, 0);
  f.l = Math.max(edge, 50);
  f.r = Math.max(width - 10 - axes.filter((a) => a.side === 'right').reduce((sum, a) => sum + a.w, 0), f.l + 10);
  edge = [f.l, f.r];
  for (const a of axes) {
    const left = a.side === 'left';
    a.pos = left ? edge[0] : edge[1];
    edge[left ? 0 : 1] += left ? -a.w : a.w;
  }
  const span = Math.max(to - from, 1);
  const x = (t) => f.l + ((t - from) / span) * (f.r - f.l);
  const tAt = (px) => from + ((px - f.l) / (f.r - f.l)) * span;

  const out = [];
  out.push(s('defs', s('clipPath', { id: 'trend-clip' }, s('rect', { x: f.l, y: f.t, width: f.r - f.l, height: f.b - f.t }))));
  out.push(s('rect.plot-bg', { x: f.l, y: f.t, width: f.r - f.l, height: f.b - f.t }));

  // Background bands, clipped, with their labels in lanes above the plot.
  const bandLayer = s('g.bands', { 'clip-path': 'url(#trend-clip)' });
  const labelLayer = s('g.band-labels');
  for (const b of bands) {
    const x0 = Math.max(x(b.start), f.l);
    const x1 = Math.min(x(b.end ?? to), f.r);
    if (x1 <= f.l || x0 >= f.r) continue;
    const w = Math.max(x1 - x0, 1);
    bandLayer.append(s(`rect.band.${b.kind}${b.planned ? '.planned' : ''}`, { x: x0, y: f.t, width: w, height: f.b - f.t, dataset: { band: b.kind, id: b.id } }, s('title', b.title)));
    const y = 8 + LANE_H * b.lane;
    labelLayer.append(
      s(
        `g.band-label.${b.kind}`,
        { dataset: { band: b.kind, id: b.id } },
        s('title', b.title),
        s('rect', { x: x0, y, width: w, height: LANE_H - 2, rx: 2 }),
        w > 30 ? s('text', { x: x0 + 4, y: y + LANE_H - 6 }, fit(b.label, w - 8)) : null,
      ),
    );
  }
  out.push(bandLayer, labelLayer);

  // Grid: time ticks and the first axis's value ticks.
  const grid = s('g.grid');
  const tStep = stepAtLeast((span / Math.max(f.r - f.l, 1)) * 110);
  const off = -new Date(from).getTimezoneOffset() * MIN;
  const xAxis = s('g.x-axis');
  for (let t = Math.ceil((from + off) / tStep) * tStep - off; t <= to; t += tStep) {
    const px = x(t);
    grid.append(s('line', { x1: px, x2: px, y1: f.t, y2: f.b }));
    xAxis.append(s('text', { x: px, y: f.b + 18, 'text-anchor': px > f.r - 30 ? 'end' : 'middle' }, timeLabel(t, tStep)));
  }
  for (const [v] of axes[0]?.ticks || []) grid.append(s('line', { x1: f.l, x2: f.r, y1: axes[0].y(v), y2: axes[0].y(v) }));
  out.push(grid, xAxis);

  // Series.
  const badLayer = s('g.bad-marks');
  for (const sr of series) {
    const a = axes.find((ax) => ax.key === sr.axis);
    const g = s('g.series', { 'clip-path': 'url(#trend-clip)', dataset: { path: sr.path, mode: sr.mode, points: JSON.stringify(sr.data) } });
    if (sr.mode === 'buckets') {
      for (const run of runs(sr.buckets, (b) => b.mean !== null)) {
        const top = run.map((b) => `${x(b.t).toFixed(1)},${a.y(b.max).toFixed(1)}`);
        const bottom = run.map((b) => `${x(b.t).toFixed(1)},${a.y(b.min).toFixed(1)}`).reverse();
        g.append(s('path.range', { d: run.length > 1 ? `M${top.join('L')}L${bottom.join('L')}Z` : `M${top[0]}L${bottom[0]}`, fill: sr.color, stroke: sr.color }));
        g.append(run.length > 1 ? s('path.line', { d: 'M' + run.map((b) => `${x(b.t).toFixed(1)},${a.y(b.mean).toFixed(1)}`).join('L'), stroke: sr.color }) : s('circle.dot', { cx: x(run[0].t), cy: a.y(run[0].mean), r: 3, fill: sr.color }));
      }
    } else {
      for (const run of runs(sr.points, (p) => p.v !== null)) {
        let d = '';
        run.forEach((p, i) => {
          const px = x(p.t).toFixed(1);
          const py = a.y(p.v).toFixed(1);
          if (i === 0) d = `M${px},${py}`;
          else d += sr.step ? `H${px}V${py}` : `L${px},${py}`;
        });
        if (sr.step && run.length) d += `H${x(run[run.length - 1].next ?? run[run.length - 1].t).toFixed(1)}`;
        g.append(run.length > 1 || sr.step ? s('path.line', { d, stroke: sr.color }) : s('circle.dot', { cx: x(run[0].t), cy: a.y(run[0].v), r: 3, fill: sr.color }));
      }
      for (const p of sr.points) {
        if (p.q === 'uncertain' && p.v !== null) g.append(s('circle.uncertain', { cx: x(p.t), cy: a.y(p.v), r: 3.5, stroke: sr.color }));
        // No value from a bad point until the next point: a red strip under the plot.
        if (p.v === null && p.next >= from && p.t <= to) {
          const x0 = Math.max(x(p.t), f.l);
          badLayer.append(s('rect.bad', { x: x0, y: f.b + 1, width: Math.max(Math.min(x(p.next), f.r) - x0, 2), height: 5 }, s('title', `${sr.label}: ${p.q}${p.r ? ` (${p.r.replaceAll('_', ' ')})` : ''}`)));
        }
      }
    }
    out.push(g);
  }
  out.push(badLayer);

  // Y axes, coloured like their series when an axis has one.
  for (const a of axes) {
    const color = a.series.length === 1 ? a.series[0].color : '#1b2733';
    const left = a.side === 'left';
    const g = s('g.y-axis', { dataset: { unit: a.unit || '' }, fill: color });
    g.append(s('line', { x1: a.pos, x2: a.pos, y1: f.t, y2: f.b, stroke: color }));
    for (const [v, label] of a.ticks) {
      const y = a.y(v);
      g.append(s('line', { x1: a.pos, x2: a.pos + (left ? -4 : 4), y1: y, y2: y, stroke: color }));
      g.append(s('text', { x: a.pos + (left ? -6 : 6), y: y + 4, 'text-anchor': left ? 'end' : 'start' }, label));
    }
    const ux = a.pos + (left ? -a.w + 12 : a.w - 12);
    const uy = (f.t + f.b) / 2;
    g.append(s('text.unit', { x: ux, y: uy, 'text-anchor': 'middle', transform: `rotate(${left ? -90 : 90} ${ux} ${uy})` }, fit(a.unit || a.series[0].label, f.b - f.t)));
    out.push(g);
  }
  out.push(s('rect.frame', { x: f.l, y: f.t, width: f.r - f.l, height: f.b - f.t }));
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('width', width);
  svg.setAttribute('height', height);
  svg.replaceChildren(...out);
  return { f, x, t: tAt, axes };
}

/** Maximal runs of consecutive items for which `ok` holds. */
function runs(items, ok) {
  const all = [];
  let run = [];
  for (const item of items) {
    if (ok(item)) run.push(item);
    else if (run.length) {
      all.push(run);
      run = [];
    }
  }
  if (run.length) all.push(run);
  return all;
}

/** Text cut to about `px` pixels (7 px a character at the chart's size). */
function fit(text, px) {
  const n = Math.floor(px / 7);
  return text.length > n ? `${text.slice(0, Math.max(n - 1, 1))}…` : text;
}

/** The last item of `items` (sorted by `at`) with `at` ≤ `t`, or null. */
export function atOrBefore(items, t, at = (x) => x.t) {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (at(items[mid]) <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo ? items[lo - 1] : null;
}

/**
 * Pointer handling on `svg`. `geometry()` returns the last draw's geometry. Handlers:
 * `zoom(t0, t1)` after a box is dragged (mouse), `wheel(factor, t)` to zoom about `t`,
 * `pan(dt)` while dragging with shift or a finger (dt in ms, cumulative from the start),
 * `panned()` at the end of a pan, `hover(t, px, py)` (t null when the pointer leaves; a
 * tap shows it too).
 * Returns a function that removes the listeners.
 */
export function interact(svg, geometry, on) {
  let drag = null;
  const local = (e) => {
    const r = svg.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  };
  const inside = ([px, py], f) => px >= f.l && px <= f.r && py >= f.t && py <= f.b;
  const down = (e) => {
    const g = geometry();
    const p = local(e);
    if (!g || !inside(p, g.f) || e.button > 0) return;
    drag = { x0: p[0], p, pan: e.shiftKey || e.pointerType !== 'mouse', g, box: null };
    svg.setPointerCapture(e.pointerId);
    e.preventDefault();
  };
  const move = (e) => {
    const p = local(e);
    if (!drag) {
      const g = geometry();
      on.hover(g && inside(p, g.f) ? g.t(p[0]) : null, p[0], p[1]);
      return;
    }
    const { f } = drag.g;
    drag.p = p;
    drag.moved ||= Math.abs(p[0] - drag.x0) >= 6;
    if (drag.pan) {
      if (drag.moved) on.pan(drag.g.t(drag.x0) - drag.g.t(p[0]));
      return;
    }
    const x1 = Math.min(Math.max(p[0], f.l), f.r);
    if (!drag.box) svg.append((drag.box = s('rect.zoom-box', { y: f.t, height: f.b - f.t })));
    drag.box.setAttribute('x', Math.min(drag.x0, x1));
    drag.box.setAttribute('width', Math.abs(x1 - drag.x0));
    drag.x1 = x1;
  };
  const up = () => {
    if (!drag) return;
    const d = drag;
    drag = null;
    // A tap (touch has no hover) shows the values there.
    if (d.pan && !d.moved) on.hover(d.g.t(d.p[0]), d.p[0], d.p[1]);
    else if (d.pan) on.panned();
    else if (d.box) {
      d.box.remove();
      if (Math.abs(d.x1 - d.x0) >= 8) on.zoom(d.g.t(Math.min(d.x0, d.x1)), d.g.t(Math.max(d.x0, d.x1)));
    }
  };
  const wheel = (e) => {
    const g = geometry();
    const p = local(e);
    if (!g || !inside(p, g.f)) return;
    e.preventDefault();
    on.wheel(e.deltaY > 0 ? 1.25 : 0.8, g.t(p[0]));
  };
  // A finger leaves after every tap: the values it asked for stay.
  const leave = (e) => !drag && e.pointerType === 'mouse' && on.hover(null);
  const listeners = [['pointerdown', down], ['pointermove', move], ['pointerup', up], ['pointercancel', up], ['pointerleave', leave], ['wheel', wheel]];
  for (const [name, fn] of listeners) svg.addEventListener(name, fn, name === 'wheel' ? { passive: false } : undefined);
  return () => listeners.forEach(([name, fn]) => svg.removeEventListener(name, fn));
}
