// Building DOM without a framework: `h('div.card', {onclick}, child, ...)`. Text is always
// set as text (never parsed as HTML), so values from machines and people cannot inject markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An element: `tag` may carry classes (`'td.num'`); attrs: `on*` are listeners, `class`,
 *  `dataset`, anything else an attribute (false/null skipped). Children: nodes, strings,
 *  numbers, arrays, null. */
export function h(tag, attrs, ...children) {
  return build(document.createElement.bind(document), tag, attrs, children);
}

/** The same for SVG elements. */
export function s(tag, attrs, ...children) {
  return build((t) => document.createElementNS(SVG_NS, t), tag, attrs, children);
}

function build(create, tag, attrs, children) {
  const [name, ...classes] = tag.split('.');
  const el = create(name);
  if (classes.length) el.setAttribute('class', classes.join(' '));
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.setAttribute('class', [...classes, value].join(' '));
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

/** Appends nodes, strings and (nested) arrays; skips null, undefined and false. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces everything inside `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Adds a page's own stylesheet once (pages keep their CSS beside their module). */
export function loadCss(href) {
  if (document.querySelector(`link[data-page-css="${href}"]`)) return;
  document.head.append(h('link', { rel: 'stylesheet', href, dataset: { pageCss: href } }));
}

// ── Formatting ─────────────────────────────────────────────────────────────────────────

/** A value as people read it: numbers to their significant digits, null as an em dash. */
export function formatValue(value) {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return String(value);
    if (Number.isInteger(value)) return value.toLocaleString('en-US', { useGrouping: false });
    return String(Number(value.toPrecision(10)));
  }
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** An RFC 3339 time as local date and time to the second (with milliseconds if asked). */
export function formatTime(text, { ms = false, date = true } = {}) {
  if (!text) return '—';
  const t = new Date(text);
  if (Number.isNaN(t.getTime())) return String(text);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  const day = `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())}`;
  const clock = `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}${ms ? '.' + pad(t.getMilliseconds(), 3) : ''}`;
  return date ? `${day} ${clock}` : clock;
}

/** A duration in seconds as `1 h 02 min`, `3 min 05 s` or `12 s`. */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** An asset path below the site, as people at the plant say it: `packaging/line-1/filler`. */
export function shortPath(path) {
  return path.split('/').slice(2).join('/') || path;
}

/** A fraction 0..1 as a percentage with one decimal. */
export function formatPercent(fraction) {
  if (fraction === null || fraction === undefined || !Number.isFinite(fraction)) return '—';
  return `${(fraction * 100).toFixed(1)} %`;
}

/** The quality badge every page uses: good, uncertain or bad, with the reason said. */
export function qualityBadge(quality, reason) {
  const q = quality || 'bad';
  return h(`span.quality.q-${q}`, { title: reason || q }, reason ? `${q}: ${reason.replaceAll('_', ' ')}` : q);
}

/** A small status line at the top of a page for errors and confirmations. */
export function notice(kind, text) {
  return h(`p.notice.${kind}`, { role: kind === 'error' ? 'alert' : 'status' }, text);
}
