// Connections: every source and sink with its state, its last error in plain words (the
// technical text on expand), each buffered sink's backlog, and a few counters from /metrics
// with their rates. Re-read every 2 s.

import { h, replace, notice, loadCss, formatTime, formatDuration } from '../lib/dom.js';
import { get } from '../lib/api.js';

const REFRESH_MS = 2000;

const STATES = {
  starting: ['Starting', 'wait'],
  running: ['Running', 'ok'],
  degraded: ['Degraded', 'warn'],
  restarting: ['Restarting', 'bad'],
  failed: ['Failed', 'bad'],
  disabled: ['Disabled', 'off'],
  stopped: ['Stopped', 'off'],
};

/** What an error kind means for the person at the plant. */
const PLAIN = {
  connect: 'Cannot reach the device or server: check the address, the network and that it is switched on.',
  io: 'The connection was lost while talking to it.',
  protocol: 'It answered in a way the gateway did not expect (wrong unit, address or settings?).',
  config: 'The configuration is wrong for it: fix the configuration and restart the gateway.',
  permanent: 'It failed in a way retrying cannot fix: fix the cause and restart the gateway.',
  panic: 'An internal error stopped it (a bug: please report it with the detail below).',
};

/** Counters shown per component: metric → label. Events come from component_events_total. */
const SOURCE_METRICS = [['backplane_source_readings_total', 'Readings']];
const SINK_METRICS = [['backplane_sink_records_total', 'Records'], ['backplane_sink_dropped_total', 'Dropped']];

/** OpenMetrics text → Map(name → [{labels, value}]). */
export function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1]).push({ labels, value: Number(m[3]) });
  }
  return out;
}

function counters(metrics, c) {
  const list = [];
  const mine = (s) => s.labels.name === c.name && (!s.labels.component || s.labels.component === c.component);
  for (const [metric, label] of c.component === 'source' ? SOURCE_METRICS : SINK_METRICS) {
    const s = (metrics.get(metric) || []).find(mine);
    if (s) list.push([label, s.value]);
  }
  for (const s of (metrics.get('backplane_component_events_total') || []).filter(mine)) {
    const label = s.labels.event.replaceAll('_', ' ');
    list.push([label[0].toUpperCase() + label.slice(1), s.value]);
  }
  return list;
}

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
const bytes = (n) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`);
const rate = (r) => (r >= 10 ? Math.round(r) : r.toFixed(1));

export async function render(root) {
  loadCss('/ui/pages/connections.css');
  const summary = h('p.summary.muted');
  const status = h('div');
  const sources = h('div.conn-grid');
  const sinks = h('div.conn-grid');
  replace(
    root,
    h('div.toolbar', h('h1', 'Connections'), summary),
    status,
    h('section', { 'aria-label': 'Sources' }, h('h2', 'Sources'), sources),
    h('section', { 'aria-label': 'Sinks' }, h('h2', 'Sinks'), sinks),
  );
  const open = new Set(); // components whose detail is expanded, kept across refreshes
  let last = new Map(); // counter key → value at the last refresh, for rates
  let lastAt = 0;
  let next = new Map();
  let timer = null;
  let stopped = false;

  const card = (c, metrics, buffer, now) => {
    const key = `${c.component}/${c.name}`;
    const [word, tone] = STATES[c.state] || [c.state, 'off'];
    const since = (now - Date.parse(c.since)) / 1000;
    const rows = counters(metrics, c).map(([label, value]) => {
      const k = `${key}/${label}`;
      const before = last.get(k);
      const r = before === undefined ? null : (value - before) / ((now - lastAt) / 1000);
      next.set(k, value);
      return h('div.metric', h('dt', label), h('dd', String(value), r !== null && r > 0 ? h('span.rate', ` ${rate(r)}/s`) : null));
    });
    let error = null;
    if (c.last_error) {
      const plain = PLAIN[c.error_kind] || (c.state === 'degraded' ? 'It runs, but not fully:' : 'The last error:');
      const detail = h(
        'details.detail',
        { open: open.has(key), ontoggle: (e) => (e.target.open ? open.add(key) : open.delete(key)) },
        h('summary', 'Technical detail'),
        h('p.mono.error-text', c.last_error),
        h('dl.facts', c.error_kind ? [h('dt', 'Kind'), h('dd', c.error_kind)] : null, c.last_error_at ? [h('dt', 'At'), h('dd', formatTime(c.last_error_at))] : null),
      );
      const recovered = c.state === 'running';
      error = h(
        `div.last-error${recovered ? '.past' : ''}`,
        h('p', h('strong', recovered ? 'Recovered from: ' : 'Problem: '), PLAIN[c.error_kind] ? plain : `${plain} ${c.last_error}`),
        c.last_error_at ? h('p.muted.small', `${recovered ? 'Last error' : 'Since'} ${formatTime(c.last_error_at)} (${formatDuration((now - Date.parse(c.last_error_at)) / 1000)} ago)`) : null,
        detail,
      );
    }
    let backlog = null;
    if (buffer) {
      const empty = buffer.backlog_samples === 0;
      backlog = h(
        `div.buffer${empty ? '' : '.filling'}`,
        { dataset: { sink: c.name } },
        h('h3', 'Store-and-forward buffer', buffer.replaying ? h('span.badge.warn', 'replaying') : null),
        h(
          'dl.metrics',
          h('div.metric', h('dt', 'Backlog'), h('dd.backlog', `${plural(buffer.backlog_samples, 'record')} · ${bytes(buffer.backlog_bytes)}`)),
          h('div.metric', h('dt', 'Oldest'), h('dd', buffer.oldest_age_seconds == null ? '—' : formatDuration(buffer.oldest_age_seconds))),
          h('div.metric', h('dt', 'Drain rate'), h('dd', `${rate(buffer.drain_rate)}/s`)),
          h('div.metric', h('dt', 'Dropped'), h('dd', String(buffer.dropped))),
        ),
      );
    }
    return h(
      `article.conn.tone-${tone}`,
      { dataset: { component: c.component, name: c.name, state: c.state } },
      h(
        'header',
        h('div', h('h3.name', c.name), h('span.kind', c.kind)),
        h(`span.badge.${tone}.state-word`, word),
      ),
      h(
        'p.muted.small',
        `${word} for ${formatDuration(since)}`,
        c.restarts ? ` · ${plural(c.restarts, 'restart')}` : '',
        c.retry_at ? ` · next try ${formatTime(c.retry_at, { date: false })}` : '',
      ),
      c.component === 'source' && c.state !== 'disabled'
        ? h('p.muted.small.last-reading', c.last_reading_at ? `Last reading ${formatDuration(Math.max(0, now - Date.parse(c.last_reading_at)) / 1000)} ago` : 'No reading received yet')
        : null,
      error,
      rows.length ? h('dl.metrics', rows) : null,
      backlog,
    );
  };

  const refresh = async () => {
    try {
      const [health, text] = await Promise.all([get('/api/v1/health'), get('/metrics').catch(() => '')]);
      const metrics = parseMetrics(typeof text === 'string' ? text : '');
      const now = Date.now();
      next = new Map();
      const buffers = new Map((health.buffers || []).map((b) => [b.sink, b]));
      const cards = (kind) => health.components.filter((c) => c.component === kind).map((c) => card(c, metrics, buffers.get(c.name), now));
      replace(sources, cards('source'));
      replace(sinks, cards('sink'));
      if (!health.components.some((c) => c.component === 'source')) replace(sources, h('p.muted', 'No sources are configured.'));
      if (!health.components.some((c) => c.component === 'sink')) replace(sinks, h('p.muted', 'No sinks are configured.'));
      [last, lastAt] = [next, now];
      const bad = health.components.filter((c) => !['running', 'disabled'].includes(c.state)).length;
      summary.textContent = `${health.components.length} connections · ${bad ? `${bad} need attention` : 'all running'} · up ${formatDuration(health.uptime_seconds)} · version ${health.version}`;
      summary.className = `summary ${bad ? 'attention' : 'muted'}`;
      replace(status);
    } catch (e) {
      replace(status, notice('error', `Health could not be read: ${e.message}`));
    }
    if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
  };
  await refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
