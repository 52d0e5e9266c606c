// Trends: several history series on one time axis, one y axis per unit, with the work
// orders and downtimes of their assets behind the curves. Short ranges show the raw points;
// long ones min/mean/max buckets (never more than about two values per pixel). Presets,
// absolute from/to, box and wheel zoom, pan, live mode, and CSV of exactly what is drawn.
//
// URL: #/trends?tags=a/b/c,d/e/f&range=1h (live) or &from=ISO&to=ISO; &mode=buckets;
// &historian=NAME when the gateway has several.

import { h, s, replace, loadCss, notice, formatValue, formatTime, formatDuration } from '../lib/dom.js';
import { get, query, ApiError } from '../lib/api.js';
import { PALETTE, TIME_STEPS, stepAtLeast, durationText, draw, atOrBefore, interact } from '../lib/chart.js';

const PRESETS = [['15m', '15 min'], ['1h', '1 h'], ['8h', '8 h'], ['24h', '24 h'], ['7d', '7 d']];
const UNITS = { s: 1000, m: 60000, h: 3600000, d: 86400000 };
const NUMERIC = ['float', 'int', 'uint', 'bool'];
const MAX_SERIES = PALETTE.length;
const MIN_SPAN = 10000;
const BANDS_REFRESH_MS = 10000;
const MAX_SPAN = 400 * UNITS.d;
const BUCKET_STEPS = TIME_STEPS.slice(0, -1).concat([UNITS.d * 7, UNITS.d * 14, UNITS.d * 30]);

const parseSpan = (text) => {
  const m = /^(\d+)([smhd])$/.exec(text || '');
  return m ? Number(m[1]) * UNITS[m[2]] : null;
};
const iso = (ms) => new Date(ms).toISOString();
/** ms → the value of a datetime-local input (local time, to the second). */
const localInput = (ms) => {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
};
/** A value as the chart can draw it, or null (no value, not finite, not a number). */
const numeric = (v) => (typeof v === 'boolean' ? Number(v) : typeof v === 'number' && Number.isFinite(v) ? v : null);
/** A reading for people: 6 significant digits, whole numbers from 100 000 on. */
const fmt = (v) => (typeof v !== 'number' || !Number.isFinite(v) ? formatValue(v) : Math.abs(v) >= 1e5 ? v.toFixed(0) : String(Number(v.toPrecision(6))));
const shortName = (path) => path.split('/').slice(-3).join('/');
const covers = (a, b) => a === b || b.startsWith(`${a}/`) || a.startsWith(`${b}/`);

export async function render(root, ctx) {
  loadCss('/ui/pages/trends.css');
  const p = ctx.params;
  const historian = p.historian || undefined;
  const state = {
    tags: (p.tags || '').split(',').map((t) => t.trim()).filter(Boolean),
    mode: p.mode === 'buckets' ? 'buckets' : 'auto',
    live: true,
    span: Math.min(parseSpan(p.range) || UNITS.h, MAX_SPAN),
    from: 0,
    to: 0,
  };
  const from = Date.parse(p.from);
  const to = Date.parse(p.to);
  if (Number.isFinite(from) && Number.isFinite(to) && to > from) Object.assign(state, { live: false, from: Math.max(from, to - MAX_SPAN), to, span: Math.min(to - from, MAX_SPAN) });
  else {
    state.to = Date.now();
    state.from = state.to - state.span;
  }

  // ── Layout ──────────────────────────────────────────────────────────────────────────
  const status = h('div.trend-status');
  const presetButtons = PRESETS.map(([key, label]) => h('button.preset', { type: 'button', dataset: { range: key }, onclick: () => preset(parseSpan(key)) }, label));
  const liveButton = h('button.live-toggle', { type: 'button', 'aria-pressed': 'false', onclick: () => setLive(!state.live) }, 'Live');
  const fromInput = h('input', { type: 'datetime-local', step: 1, 'aria-label': 'From' });
  const toInput = h('input', { type: 'datetime-local', step: 1, 'aria-label': 'To' });
  const modeSelect = h('select', { 'aria-label': 'Detail', onchange: () => { state.mode = modeSelect.value; changed(); } }, h('option', { value: 'auto' }, 'Raw when it fits'), h('option', { value: 'buckets' }, 'Min/mean/max buckets'));
  modeSelect.value = state.mode;
  const exportButton = h('button', { type: 'button', onclick: () => exportCsv() }, 'Export CSV');
  const legend = h('ul.legend', { 'aria-label': 'Series' });
  const addInput = h('input.add-series', { type: 'search', list: 'trend-series', placeholder: 'Add a tag: asset/attribute', 'aria-label': 'Add a series' });
  const options = h('datalist', { id: 'trend-series' });
  const svg = s('svg.trend-chart', { role: 'img', 'aria-label': 'Trend chart' });
  const tip = h('div.trend-tip', { hidden: true, role: 'status' });
  const plot = h('div.trend-plot', svg, tip);
  const info = h('p.trend-info.muted');
  replace(
    root,
    h(
      'div.trend-bar',
      h('h1', 'Trends'),
      h('div.segmented', { role: 'group', 'aria-label': 'Time range' }, presetButtons),
      liveButton,
      h('div.group', h('button', { type: 'button', title: 'Earlier', 'aria-label': 'Earlier', onclick: () => shift(-0.5) }, '◀'), h('button', { type: 'button', title: 'Zoom out', 'aria-label': 'Zoom out', onclick: () => zoomAbout(2, (state.from + state.to) / 2) }, '−'), h('button', { type: 'button', title: 'Later', 'aria-label': 'Later', onclick: () => shift(0.5) }, '▶')),
      h('form.range', { onsubmit: (e) => { e.preventDefault(); absolute(); } }, fromInput, h('span', '–'), toInput, h('button', { type: 'submit' }, 'Apply')),
    ),
    h('div.trend-series', legend, h('form.add', { onsubmit: (e) => { e.preventDefault(); add(addInput.value.trim()); } }, addInput, options, h('button', { type: 'submit' }, 'Add'))),
    status,
    h('section.card.trend-card', plot, h('div.trend-foot', info, h('label.mode', 'Detail ', modeSelect), exportButton)),
  );

  // ── Series known to the historian ───────────────────────────────────────────────────
  let known = new Map();
  const readSeries = async () => {
    const answer = await get('/api/v1/history/series', { historian });
    known = new Map(answer.series.filter((sr) => NUMERIC.includes(sr.type)).map((sr) => [sr.path, sr]));
  };
  try {
    await readSeries();
  } catch (e) {
    replace(status, notice('error', e.code === 'historian_not_configured' ? 'This gateway keeps no history: add a historian sink to its configuration.' : `The stored series could not be read: ${e.message}`));
    return;
  }
  replace(options, [...known.keys()].map((path) => h('option', { value: path })));
  const dropped = state.tags.filter((t) => !known.has(t));
  state.tags = state.tags.filter((t, i, all) => known.has(t) && all.indexOf(t) === i).slice(0, MAX_SERIES);
  const colors = new Map(state.tags.map((t, i) => [t, PALETTE[i]]));

  // ── State changes ───────────────────────────────────────────────────────────────────
  let data = []; // per series: {path, label, color, axis, unit, step, mode, points|buckets, data}
  let bands = [];
  let bandsAt = 0; // when and for which tags the bands were read: live mode re-reads them every 10 s
  let bandsKey = '';
  let lanes = 0;
  let geometry = null;
  let timer = null;
  let debounce = null;
  let generation = 0;
  let stopped = false;
  let hoverT = null;
  const warnings = dropped.length ? [`Not a stored numeric series, left out: ${dropped.join(', ')}`] : [];

  const writeUrl = () => {
    const q = { tags: state.tags.join(',') || null, mode: state.mode === 'buckets' ? 'buckets' : null, historian };
    if (state.live) q.range = durationText(state.span);
    else Object.assign(q, { from: iso(state.from), to: iso(state.to) });
    history.replaceState(null, '', `#/trends${query(q)}`);
  };
  const showControls = () => {
    liveButton.setAttribute('aria-pressed', String(state.live));
    liveButton.classList.toggle('on', state.live);
    for (const b of presetButtons) b.classList.toggle('on', state.live && parseSpan(b.dataset.range) === state.span);
    if (document.activeElement !== fromInput && document.activeElement !== toInput) {
      fromInput.value = localInput(state.from);
      toInput.value = localInput(state.to);
    }
  };
  /** The view moved: draw at once with what is loaded, fetch after a pause. */
  const changed = (wait = 250) => {
    state.span = state.to - state.from;
    writeUrl();
    showControls();
    paint();
    clearTimeout(debounce);
    clearTimeout(timer);
    debounce = setTimeout(load, wait);
  };
  const clampSpan = (a, b) => {
    const span = Math.min(Math.max(b - a, MIN_SPAN), MAX_SPAN);
    const mid = (a + b) / 2;
    return [mid - span / 2, mid + span / 2];
  };
  const setRange = (a, b, live = false) => {
    [state.from, state.to] = clampSpan(a, b);
    state.live = live;
    changed();
  };
  const preset = (span) => setRange(Date.now() - span, Date.now(), true);
  const setLive = (on) => (on ? preset(state.span) : setRange(state.from, state.to));
  /** Half a range earlier or later; never past now (the future has no history). */
  const shift = (fraction) => {
    const d = Math.min(state.span * fraction, Date.now() - state.to);
    setRange(state.from + d, state.to + d);
  };
  const zoomAbout = (factor, t) => setRange(t - (t - state.from) * factor, t + (state.to - t) * factor);
  const absolute = () => {
    const a = Date.parse(fromInput.value);
    const b = Date.parse(toInput.value);
    if (!Number.isFinite(a) || !Number.isFinite(b) || b <= a) {
      replace(status, notice('error', 'Give a start before the end.'));
      return;
    }
    replace(status);
    fromInput.blur();
    toInput.blur();
    setRange(a, b);
  };
  const add = (path) => {
    if (!path) return;
    if (!known.has(path)) return replace(status, notice('error', `“${path}” is not a stored numeric series.`));
    if (state.tags.includes(path)) return replace(status, notice('info', `${path} is already shown.`));
    if (state.tags.length >= MAX_SERIES) return replace(status, notice('error', `At most ${MAX_SERIES} series at once: remove one first.`));
    replace(status);
    colors.set(path, PALETTE.find((c) => ![...colors.values()].includes(c)));
    state.tags.push(path);
    addInput.value = '';
    changed(0);
  };
  const remove = (path) => {
    state.tags = state.tags.filter((t) => t !== path);
    colors.delete(path);
    data = data.filter((d) => d.path !== path);
    changed(0);
  };

  // ── Loading ─────────────────────────────────────────────────────────────────────────
  /** The plot's width in pixels: the last drawing's, or less when axes were added since. */
  const plotWidth = () => {
    const units = new Set(state.tags.map((t) => known.get(t)?.unit || t)).size;
    const estimate = (plot.clientWidth || 800) - 20 - 70 * Math.max(units, 1);
    return Math.max(Math.min(estimate, geometry?.axes.length ? geometry.f.r - geometry.f.l : Infinity), 100);
  };
  /** Whether a series' raw points in the range fit 2 per pixel, from its stored rate. */
  const fits = (sr, a, b, limit) => {
    const first = Date.parse(sr.first);
    const last = Date.parse(sr.last);
    if (!sr.points || !Number.isFinite(first)) return true;
    const overlap = Math.max(0, Math.min(b, last) - Math.max(a, first));
    return (sr.points / Math.max(last - first, 1000)) * overlap <= limit;
  };

  async function load() {
    clearTimeout(timer);
    if (stopped) return;
    const mine = ++generation;
    if (state.live) {
      state.to = Date.now();
      state.from = state.to - state.span;
      showControls();
    }
    const a = Math.round(state.from);
    const b = Math.round(state.to);
    const width = plotWidth();
    const limit = Math.round(width * 2);
    const every = stepAtLeast(((b - a) / width) * 2, BUCKET_STEPS);
    // A tag with nothing stored yet cannot be asked for (404): read the list again.
    if (state.tags.some((t) => !known.get(t)?.points)) await readSeries().catch(() => {});
    const stored = state.tags.filter((t) => known.get(t)?.points);
    const raw = state.mode === 'auto' ? stored.filter((t) => fits(known.get(t), a, b, limit)) : [];
    const buckets = stored.filter((t) => !raw.includes(t));
    const series = new Map();
    const problems = [];
    try {
      const [rawAnswer, bandList] = await Promise.all([
        raw.length ? get('/api/v1/history/raw', { tag: raw.join(','), from: iso(a), to: iso(b), limit, historian }) : null,
        (state.live && bandsKey === `${state.tags} ${state.span}` && Date.now() - bandsAt < BANDS_REFRESH_MS ? Promise.resolve(bands) : loadBands(a, b)).catch((e) => {
          problems.push(`Work orders and downtimes could not be read: ${e.message}`);
          return [];
        }),
      ]);
      for (const sr of rawAnswer?.series || []) {
        // More points than pixels can show: the series is drawn as buckets instead.
        if (sr.truncated) buckets.push(sr.path);
        else series.set(sr.path, rawSeries(sr, b));
      }
      if (buckets.length) {
        const start = Math.floor(a / every) * every;
        const agg = await get('/api/v1/history/aggregate', { tag: buckets.join(','), from: iso(start), to: iso(b), every: durationText(every), fn: 'min,mean,max,count', historian });
        for (const sr of agg.series) series.set(sr.path, bucketSeries(sr));
      }
      if (mine !== generation || stopped) return;
      if (bandList !== bands) [bands, bandsAt, bandsKey] = [bandList, Date.now(), `${state.tags} ${state.span}`];
      data = state.tags.filter((t) => series.has(t)).map((t) => ({ ...series.get(t), color: colors.get(t) }));
      replace(status, [...warnings, ...problems].map((w) => notice('error', w)));
      info.textContent = data.length
        ? `${data.some((d) => d.mode === 'buckets') ? `Buckets of ${durationText(every)} (min–max band, mean line)` : 'Raw points'}${data.some((d) => d.mode === 'raw') && data.some((d) => d.mode === 'buckets') ? ' and raw points' : ''}. Drag to zoom, shift-drag or swipe to pan, wheel to zoom, point or tap for values.`
        : '';
    } catch (e) {
      if (mine !== generation || stopped) return;
      replace(status, notice('error', e instanceof ApiError ? `History could not be read: ${e.message}` : String(e)));
    }
    paint();
    if (state.live && !stopped) timer = setTimeout(load, Math.min(Math.max((b - a) / width, 2000), 30000));
  }

  const rawSeries = (sr, end) => {
    const step = sr.type !== 'float';
    const points = sr.points.map((pt) => ({ t: Date.parse(pt.time), v: pt.quality === 'bad' ? null : numeric(pt.value), q: pt.quality, r: pt.quality_reason, time: pt.time, value: pt.value }));
    points.forEach((pt, i) => (pt.next = points[i + 1]?.t ?? Math.min(end, Date.now())));
    return { ...meta(sr), step, mode: 'raw', points, data: points.map((pt) => [pt.time, pt.value, pt.q]) };
  };
  const bucketSeries = (sr) => {
    const buckets = sr.buckets.map((bk) => {
      const s0 = Date.parse(bk.start);
      const e0 = Date.parse(bk.end);
      return { t: (s0 + e0) / 2, s: s0, e: e0, start: bk.start, end: bk.end, min: numeric(bk.min), mean: numeric(bk.mean), max: numeric(bk.max), count: bk.count };
    });
    // Empty buckets stay (they are the gaps) but are not data.
    const used = buckets.filter((bk) => bk.mean !== null);
    return { ...meta(sr), mode: 'buckets', buckets, data: used.map((bk) => [bk.start, bk.min, bk.mean, bk.max]) };
  };
  const meta = (sr) => ({ path: sr.path, label: shortName(sr.path), unit: sr.unit || '', axis: sr.unit ? `u:${sr.unit}` : `s:${sr.path}`, asset: sr.asset });

  /** Work orders (running spans) and downtimes of the shown series' assets in [a, b). */
  async function loadBands(a, b) {
    const assets = state.tags.map((t) => known.get(t)?.asset).filter(Boolean);
    if (!assets.length) return [];
    const relevant = (asset) => assets.some((x) => covers(asset, x));
    const optional = (promise) => promise.catch((e) => (e.code === 'production_not_configured' || e.status === 404 ? null : Promise.reject(e)));
    const [orders, downtimes, events] = await Promise.all([
      optional(get('/api/v1/production/work-orders')),
      optional(get('/api/v1/production/downtimes', { from: iso(a), to: iso(b) })),
      optional(get('/api/v1/history/events', { kind: 'downtime', from: iso(a), to: iso(b), limit: 1000, historian })),
    ]);
    const out = [];
    for (const wo of orders || []) {
      if (!relevant(wo.asset)) continue;
      (wo.history || []).forEach((entry, i, all) => {
        if (entry.status !== 'running') return;
        const start = Date.parse(entry.time);
        const next = all[i + 1];
        const end = next ? Date.parse(next.time) : null;
        if (start >= b || (end !== null && end <= a)) return;
        const until = next ? `${formatTime(next.time)} (${next.status})` : 'now (running)';
        out.push({ kind: 'work_order', id: wo.id, asset: wo.asset, start, end, label: `${wo.id} · ${wo.product}`, title: `Work order ${wo.id}, ${wo.product}, on ${wo.asset}\n${formatTime(entry.time)} – ${until}` });
      });
    }
    // Downtimes: the production stage's recent ones, and older closed ones from history.
    const seen = new Map();
    for (const d of downtimes || []) seen.set(`${d.asset}#${d.id}`, d);
    for (const e of events?.events || []) if (e.end && !seen.has(`${e.asset}#${e.id}`)) seen.set(`${e.asset}#${e.id}`, e);
    for (const d of seen.values()) {
      if (!relevant(d.asset)) continue;
      const start = Date.parse(d.start);
      const end = d.end ? Date.parse(d.end) : null;
      const why = d.reason_description || d.reason || 'no reason given';
      const long = end ? formatDuration((end - start) / 1000) : 'open';
      out.push({ kind: 'downtime', planned: d.planned, id: String(d.id), asset: d.asset, start, end, label: `${d.asset.split('/').slice(-2).join('/')} · ${d.state} · ${why}`, title: `Downtime ${d.id} on ${d.asset}: ${d.state}, ${d.planned ? 'planned' : 'unplanned'}, ${long}\nReason: ${why}\n${formatTime(d.start)} – ${d.end ? formatTime(d.end) : 'now'}` });
    }
    // One label lane per kind and asset, work orders first.
    const laneKeys = [...new Set(out.map((x) => `${x.kind} ${x.asset}`))].sort().reverse();
    for (const x of out) x.lane = laneKeys.indexOf(`${x.kind} ${x.asset}`);
    lanes = laneKeys.length;
    return out;
  }

  // ── Drawing ─────────────────────────────────────────────────────────────────────────
  function paint() {
    if (stopped) return;
    const width = plot.clientWidth || 800;
    const height = plot.clientHeight || 400;
    const shown = data.filter((d) => state.tags.includes(d.path));
    geometry = draw(svg, { width, height, from: state.from, to: state.to }, shown, bands, lanes);
    replace(
      legend,
      state.tags.map((t) => {
        const sr = known.get(t) || {};
        const d = shown.find((x) => x.path === t);
        return h(
          'li',
          { dataset: { path: t } },
          swatch(colors.get(t)),
          h('span.series-name', { title: t }, shortName(t)),
          sr.unit ? h('span.unit', sr.unit) : null,
          d ? h('span.series-mode', `${d.data.length} ${d.mode === 'raw' ? 'points' : 'buckets'}`) : null,
          h('button.remove', { type: 'button', title: `Remove ${t}`, 'aria-label': `Remove ${t}`, onclick: () => remove(t) }, '×'),
        );
      }),
    );
    if (!state.tags.length) replace(info, 'Add a tag above, or open an asset and choose Trend next to an attribute.');
    hover(hoverT);
  }
  const swatch = (color) => {
    const el = h('span.swatch', { 'aria-hidden': 'true' });
    el.style.background = color;
    return el;
  };

  function hover(t, px, py) {
    hoverT = t;
    svg.querySelectorAll('.cursor, .hover-dot').forEach((el) => el.remove());
    const g = geometry;
    if (t === null || !g || !data.length) {
      tip.hidden = true;
      return;
    }
    svg.append(s('line.cursor', { x1: g.x(t), x2: g.x(t), y1: g.f.t, y2: g.f.b }));
    const rows = [];
    for (const d of data) {
      const axis = g.axes.find((ax) => ax.key === d.axis);
      // The value held at t (until the next point), or the bucket containing t.
      const found = d.mode === 'raw' ? atOrBefore(d.points, t) : atOrBefore(d.buckets, t, (bk) => bk.s);
      const item = found && t <= (d.mode === 'raw' ? found.next : found.e) ? found : null;
      let text = '—';
      if (item && d.mode === 'raw') {
        text = item.v === null ? `no value (${item.q}${item.r ? `: ${item.r.replaceAll('_', ' ')}` : ''})` : `${fmt(item.value)} ${d.unit}${item.q !== 'good' ? ` (${item.q})` : ''}`;
      } else if (item?.mean === null) text = 'no usable value';
      else if (item) text = `${fmt(item.mean)} ${d.unit} (${fmt(item.min)} – ${fmt(item.max)})`;
      const v = item && (d.mode === 'raw' ? item.v : item.mean);
      if (v !== null && v !== undefined && axis) svg.append(s('circle.hover-dot', { cx: g.x(item.t), cy: axis.y(v), r: 4, fill: d.color }));
      rows.push(h('div.tip-row', { dataset: { path: d.path } }, swatch(d.color), h('span', d.label), h('b', text)));
    }
    const here = bands.filter((b) => b.start <= t && (b.end ?? Infinity) >= t);
    replace(tip, h('div.tip-time', formatTime(iso(t), { ms: state.span < 120000 })), rows, here.map((b) => h(`div.tip-band.${b.kind}`, b.title.split('\n')[0])));
    tip.hidden = false;
    if (px !== undefined) {
      const right = px > plot.clientWidth / 2;
      tip.style.left = right ? '' : `${px + 16}px`;
      tip.style.right = right ? `${plot.clientWidth - px + 16}px` : '';
      tip.style.top = `${Math.max(py - 20, 0)}px`;
    }
  }

  // ── CSV of exactly what is drawn ────────────────────────────────────────────────────
  function exportCsv() {
    const cell = (v) => {
      const text = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
      return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
    };
    const lines = [['time', 'series', 'unit', 'value', 'quality', 'min', 'mean', 'max']];
    for (const d of data) {
      if (d.mode === 'raw') for (const [time, value, quality] of d.data) lines.push([time, d.path, d.unit, value, quality, null, null, null]);
      else for (const [start, min, mean, max] of d.data) lines.push([start, d.path, d.unit, null, null, min, mean, max]);
    }
    const blob = new Blob([lines.map((l) => l.map(cell).join(',')).join('\r\n') + '\r\n'], { type: 'text/csv' });
    const a = h('a', { href: URL.createObjectURL(blob), download: `trend-${iso(state.from).slice(0, 19).replaceAll(':', '')}-${iso(state.to).slice(0, 19).replaceAll(':', '')}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }

  // ── Pointer, resize, start ──────────────────────────────────────────────────────────
  let panStart = null;
  const unbind = interact(svg, () => geometry, {
    zoom: (a, b) => setRange(a, b),
    wheel: (factor, t) => zoomAbout(factor, t),
    pan: (dt) => {
      panStart ??= [state.from, state.to];
      state.live = false;
      [state.from, state.to] = [panStart[0] + dt, panStart[1] + dt];
      state.span = state.to - state.from;
      clearTimeout(timer);
      paint();
    },
    panned: () => {
      panStart = null;
      changed(0);
    },
    hover,
  });
  let resizeTimer = null;
  let lastWidth = plot.clientWidth;
  const resized = new ResizeObserver(() => {
    paint();
    if (plot.clientWidth === lastWidth) return;
    lastWidth = plot.clientWidth;
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => !stopped && load(), 300);
  });
  resized.observe(plot);
  writeUrl();
  showControls();
  await load();
  return () => {
    stopped = true;
    clearTimeout(timer);
    clearTimeout(debounce);
    clearTimeout(resizeTimer);
    resized.disconnect();
    unbind();
  };
}
