// Production: work orders per line (and their life cycle, for operators), machine-state
// timelines, downtimes with their reasons, OEE per asset and period with all lines side by
// side, and a lot's genealogy. One tab at a time (`#/production?tab=oee`); each tab re-reads
// what it shows every few seconds while it is open.

import { h, replace, notice, loadCss, formatTime, formatDuration, formatPercent, shortPath } from '../lib/dom.js';
import { get, send, flattenAssets } from '../lib/api.js';
import { confirmChange } from '../lib/dialog.js';
import { pickReason, reasonIndex } from '../lib/reasons.js';
import { segments, drawTimeline, totals, categorize } from '../lib/timeline.js';
import { drawGenealogy } from '../lib/genealogy.js';

const TABS = [
  ['orders', 'Work orders'],
  ['states', 'Machine states'],
  ['downtimes', 'Downtimes'],
  ['oee', 'OEE'],
  ['genealogy', 'Genealogy'],
];
const API = '/api/v1/production';
const FINISHED_SHOWN = 10;

/** Allowed actions per status (docs/context.md, work orders), in the order shown. */
const ACTIONS = {
  created: ['release', 'cancel'],
  released: ['start', 'cancel'],
  running: ['hold', 'complete', 'cancel'],
  held: ['start', 'complete', 'cancel'],
};
const STATUS_ORDER = ['running', 'held', 'released', 'created', 'completed', 'cancelled'];
const LABELS = { release: 'Release', start: 'Start', hold: 'Hold', complete: 'Complete', cancel: 'Cancel order' };
const DONE = { release: 'released', start: 'started', hold: 'held', complete: 'completed', cancel: 'cancelled' };

export async function render(root, ctx) {
  loadCss('/ui/pages/production.css');
  const tab = TABS.some(([t]) => t === ctx.params.tab) ? ctx.params.tab : 'orders';
  const status = h('div.status');
  const body = h('div.tab-body', h('p.muted', 'Loading…'));
  replace(
    root,
    h('div.toolbar', h('h1', 'Production'),
      h('nav.tabs', { 'aria-label': 'Production views' },
        TABS.map(([t, title]) => h('a.tab', { href: `#/production?tab=${t}`, 'aria-current': t === tab ? 'page' : false, dataset: { tab: t } }, title)))),
    status,
    body,
  );
  const assets = new Map(flattenAssets(await get('/api/v1/assets')).map((n) => [n.path, n]));
  const env = {
    ctx,
    body,
    assets,
    operator: ctx.can('operator'),
    say: (kind, text) => replace(status, notice(kind, text)),
    clear: () => replace(status),
    name: (path) => assets.get(path)?.name || shortPath(path),
  };
  return VIEWS[tab](env);
}

const num = (v) => (v === null || v === undefined ? '—' : Number(v).toLocaleString('en-US', { maximumFractionDigits: 1 }));

/** Runs `fn` now and every `ms` until stopped; a failure is said once and retried. */
function poll(env, ms, fn) {
  let stopped = false;
  let timer = null;
  const run = async () => {
    try {
      await fn();
    } catch (e) {
      if (e.code === 'production_not_configured') {
        replace(env.body, notice('info', 'This gateway has no production stage configured, so there is nothing to show here.'));
        return;
      }
      env.say('error', e.message);
    }
    if (!stopped) timer = setTimeout(run, ms);
  };
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

// ── Work orders ─────────────────────────────────────────────────────────────────────────

function orders(env) {
  const lines = [...env.assets.values()].filter((a) => a.level === 'line').map((a) => a.path);
  const list = h('div.orders');
  let refresh = null;
  let shown = null;
  replace(env.body, env.operator ? newOrderForm(env, lines, () => refresh()) : null, list);

  const act = async (o, action) => {
    const line = env.name(o.asset);
    const q = {
      release: [`Release ${o.id}?`, `${o.id} (${o.product}) becomes ready to start on ${line}.`, 'Release'],
      start: [`Start ${o.id} on ${line}?`, `Start ${o.id} on ${line}? Every sample of ${line} will carry this work order (product ${o.product}) until it is held, completed or cancelled.`, 'Start'],
      hold: [`Hold ${o.id}?`, `Hold ${o.id} on ${line}? Samples of ${line} stop carrying it until it is started again.`, 'Hold'],
      complete: [`Complete ${o.id}?`, `Complete ${o.id} on ${line}? This is final: samples stop carrying it and its OEE is published.`, 'Complete'],
      cancel: [`Cancel ${o.id}?`, `Cancel ${o.id} on ${line}? This is final and cannot be undone.`, 'Cancel the order', 'danger'],
    }[action];
    if (!(await confirmChange(...q))) return;
    try {
      await send('POST', `${API}/work-orders/${encodeURIComponent(o.id)}/${action}`, {});
      env.say('ok', `${o.id} ${DONE[action]}.`);
    } catch (e) {
      env.say('error', `${o.id} could not be ${DONE[action]}: ${e.message}`);
    }
    refresh();
  };

  const row = (o) =>
    h('tr', { dataset: { order: o.id, status: o.status } },
      h('th', { scope: 'row' }, o.id),
      h('td', o.product),
      h('td.num', num(o.planned_quantity)),
      h('td', h(`span.wo-status.s-${o.status}`, o.status)),
      h('td.time', formatTime(o.scheduled_start)),
      h('td.time', formatTime(o.actual_start)),
      h('td.time', formatTime(o.actual_end)),
      env.operator
        ? h('td.actions', (ACTIONS[o.status] || []).map((a) =>
            h(`button.act${a === 'cancel' ? '.quiet' : a === 'start' ? '.primary' : ''}`, { type: 'button', dataset: { action: a }, onclick: () => act(o, a) }, a === 'start' && o.status === 'held' ? 'Resume' : LABELS[a])))
        : null,
    );

  refresh = async () => {
    const all = await get(`${API}/work-orders`);
    // Unchanged orders are not redrawn (keeps focus and the place of a finger on a button).
    const key = JSON.stringify(all);
    if (key === shown) return;
    shown = key;
    const groups = new Map(lines.map((l) => [l, []]));
    for (const o of all) (groups.get(o.asset) || groups.set(o.asset, []).get(o.asset)).push(o);
    const rank = (o) => STATUS_ORDER.indexOf(o.status);
    replace(list, [...groups].map(([asset, os]) => {
      os.sort((a, b) => rank(a) - rank(b) || (b.created || '').localeCompare(a.created || ''));
      // Finished orders: the latest few; the API has them all.
      const old = os.filter((o) => rank(o) > 3).slice(FINISHED_SHOWN);
      os = os.slice(0, os.length - old.length);
      const node = env.assets.get(asset);
      const running = os.find((o) => o.status === 'running');
      return h('section.card.line', { dataset: { asset } },
        h('div.card-head', h('h2', env.name(asset), node?.description ? h('span.muted.sub', node.description) : null),
          h('span', running ? ['running: ', h('strong', running.id)] : h('span.muted', 'no order running'))),
        os.length
          ? h('div.scroll', h('table.orders-table',
              h('thead', h('tr', ['Work order', 'Product', 'Planned', 'Status', 'Scheduled', 'Started', 'Ended'].map((t, i) => h(i === 2 ? 'th.num' : 'th', t)), env.operator ? h('th', 'Actions') : null)),
              h('tbody', os.map(row))))
          : h('p.muted', 'No work orders on this line.'),
        old.length ? h('p.muted.small', `${old.length} older finished ${old.length === 1 ? 'order is' : 'orders are'} not shown.`) : null);
    }));
  };
  return poll(env, 5000, refresh);
}

function newOrderForm(env, lines, done) {
  const field = (label, input) => h('div.field', h('label', { for: input.id }, label), input);
  const id = h('input', { id: 'wo-id', name: 'id', required: true, maxlength: 256, autocomplete: 'off', placeholder: 'WO-2001' });
  const product = h('input', { id: 'wo-product', name: 'product', required: true, maxlength: 256, autocomplete: 'off', placeholder: 'milk-1l-whole' });
  const asset = h('select', { id: 'wo-asset', name: 'asset', required: true }, lines.map((l) => h('option', { value: l }, env.name(l))));
  const qty = h('input', { id: 'wo-qty', name: 'planned_quantity', type: 'number', min: 0, step: 'any', inputmode: 'numeric', placeholder: '20000' });
  const rate = h('input', { id: 'wo-rate', name: 'ideal_rate_per_min', type: 'number', min: 0, step: 'any', inputmode: 'decimal', placeholder: 'optional' });
  const msg = h('div');
  const form = h('form.card.new-order', { 'aria-label': 'New work order' },
    h('h2', 'New work order'),
    h('div.fields', field('Id', id), field('Product', product), field('Line', asset), field('Planned quantity', qty), field('Ideal rate /min', rate),
      h('div.field.submit', h('button.primary', { type: 'submit' }, 'Create'))),
    msg);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { id: id.value.trim(), product: product.value.trim(), asset: asset.value };
    if (qty.value !== '') body.planned_quantity = Number(qty.value);
    if (rate.value !== '') body.ideal_rate_per_min = Number(rate.value);
    form.querySelectorAll('[aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
    try {
      await send('POST', `${API}/work-orders`, body);
      replace(msg, notice('ok', `${body.id} created on ${env.name(body.asset)}. Release it, then start it.`));
      id.value = '';
      done();
    } catch (e) {
      form.querySelector(`[name="${e.field}"]`)?.setAttribute('aria-invalid', 'true');
      replace(msg, notice('error', `The work order was not created: ${e.message}`));
    }
  });
  return form;
}

// ── Machine states ──────────────────────────────────────────────────────────────────────

function states(env) {
  const range = ['15m', 'shift'].includes(env.ctx.params.range) ? env.ctx.params.range : 'hour';
  const cards = h('div.timelines');
  const legend = h('p.legend', ['running', 'planned', 'unplanned'].map((c) => h(`span.key.cat-${c}`, c === 'planned' ? 'planned stop' : c === 'unplanned' ? 'unplanned stop' : c)));
  replace(env.body,
    h('div.subbar',
      h('nav.seg', { 'aria-label': 'Time range' }, [['15m', 'Last 15 min'], ['hour', 'Last hour'], ['shift', 'This shift']].map(([r, t]) =>
        h('a.button', { href: `#/production?tab=states&range=${r}`, 'aria-current': r === range ? 'page' : false }, t))),
      legend),
    cards);
  const known = new Map();
  return poll(env, 5000, async () => {
    const list = await get(`${API}/states`);
    for (const st of list) if (st.state && st.category) known.set(st.state, st.category);
    const to = Date.now();
    let from = to - (range === '15m' ? 900e3 : 3600e3);
    if (range === 'shift') {
      const oee = await get(`${API}/oee`, { period: 'shift' }).catch(() => []);
      const start = oee.flatMap((r) => r.current).map((p) => Date.parse(p.period_start)).filter(Number.isFinite);
      from = start.length ? Math.min(...start) : to - 8 * 3600e3;
    }
    let note = null;
    const parts = await Promise.all(list.map(async (st) => {
      let events = [];
      try {
        const r = await get('/api/v1/history/events', { asset: st.asset, kind: 'state_changed', from: new Date(from).toISOString(), to: new Date(to).toISOString(), limit: 100000 });
        events = r.events.filter((e) => e.asset === st.asset);
      } catch (e) {
        note = e.code === 'historian_not_configured' ? 'No historian is configured: only the current states are shown.' : e.message;
      }
      return segments(events, st, from, to);
    }));
    replace(cards, note ? notice('info', note) : null, list.map((st, i) => {
      const sum = totals(parts[i], known);
      const cat = st.state ? categorize(st.state, known) : 'none';
      return h('section.card.timeline-card', { dataset: { asset: st.asset } },
        h('div.card-head',
          h('h2', shortPath(st.asset)),
          h('span.now', h(`span.state.cat-${cat}`, st.state ?? 'unknown'),
            st.since ? ` since ${formatTime(st.since, { date: false })} (${formatDuration((to - Date.parse(st.since)) / 1000)})` : '',
            st.work_order ? [' · ', h('span.muted', 'work order '), h('strong', st.work_order)] : null)),
        drawTimeline(parts[i], from, to, known, `Machine states of ${shortPath(st.asset)} from ${formatTime(new Date(from).toISOString())}`),
        h('p.sums', ['running', 'planned', 'unplanned'].map((c) => h(`span.sum.cat-${c}`, `${c}: ${formatDuration(sum[c])}`))));
    }), list.length ? null : h('p.muted', 'No asset is tracked (no model has a production state).'));
  });
}

// ── Downtimes ───────────────────────────────────────────────────────────────────────────

function downtimes(env) {
  const table = h('div.scroll');
  replace(env.body, h('section.card', h('div.card-head', h('h2', 'Open and recent downtimes'), h('span.muted', 'last 8 hours')), table));
  let tree = null;
  let index = new Map();
  let refresh = null;
  const assign = async (d) => {
    const code = await pickReason(tree, `Reason for downtime ${d.id} on ${shortPath(d.asset)}`, d.reason);
    if (!code) return;
    try {
      await send('POST', `${API}/downtimes/${d.id}/reason`, { reason: code });
      env.say('ok', `Downtime ${d.id}: reason “${index.get(code)?.description || code}” (${code}) assigned.`);
    } catch (e) {
      env.say('error', `The reason was not assigned to downtime ${d.id}: ${e.message}`);
    }
    refresh();
  };
  refresh = async () => {
    if (!tree) {
      tree = await get(`${API}/reasons`);
      index = reasonIndex(tree);
    }
    const list = await get(`${API}/downtimes`, { from: 'now-8h' });
    list.sort((a, b) => (b.end === null) - (a.end === null) || Date.parse(b.start) - Date.parse(a.start));
    const now = Date.now();
    replace(table, list.length
      ? h('table.downtimes',
          h('thead', h('tr', ['Asset', 'Start', 'End', 'Duration', 'State', 'Reason', 'Counts as', 'By'].map((t, i) => h(i === 3 ? 'th.num' : 'th', t)), env.operator ? h('th', '') : null)),
          h('tbody', list.slice(0, 200).map((d) =>
            h(`tr${d.end ? '' : '.open'}`, { dataset: { id: d.id } },
              h('th', { scope: 'row' }, shortPath(d.asset), h('div.muted.small', `#${d.id}`)),
              h('td.time', formatTime(d.start)),
              h('td.time', d.end ? formatTime(d.end) : h('span.tag.open', 'open')),
              h('td.num', formatDuration((d.end ? d.duration_ms : now - Date.parse(d.start)) / 1000)),
              h('td', d.state),
              h('td.reason', d.reason ? [index.get(d.reason)?.description || d.reason, h('div.muted.small', d.reason)] : h('span.muted', 'none')),
              h('td', h(`span.tag${d.planned ? '.planned' : '.unplanned'}`, d.planned ? 'planned' : 'unplanned')),
              h('td', d.assigned_by),
              env.operator ? h('td', h('button.act', { type: 'button', onclick: () => assign(d) }, d.reason ? 'Correct reason' : 'Assign reason')) : null))))
      : h('p.muted', 'No downtime in the last 8 hours.'));
  };
  return poll(env, 5000, refresh);
}

// ── OEE ─────────────────────────────────────────────────────────────────────────────────

const meter = (v) => {
  const fill = h('span.fill');
  fill.style.width = `${Math.max(0, Math.min(1, v ?? 0)) * 100}%`;
  return h('span.factor', h('span.meter', fill), h('span.val', formatPercent(v)));
};

function oee(env) {
  const by = ['asset', 'shift', 'day', 'work_order'].includes(env.ctx.params.by) ? env.ctx.params.by : 'asset';
  const compare = h('div.compare');
  const reports = h('div.reports');
  replace(env.body,
    h('section.card.comparison',
      h('div.card-head', h('h2', 'Lines compared'),
        h('nav.seg', { 'aria-label': 'Group by' }, [['asset', 'Last 24 h'], ['shift', 'Per shift'], ['day', 'Per day'], ['work_order', 'Per work order']].map(([b, t]) =>
          h('a.button', { href: `#/production?tab=oee&by=${b}`, 'aria-current': b === by ? 'page' : false }, t)))),
      compare),
    reports);
  const models = [...new Set([...env.assets.values()].map((a) => a.model).filter(Boolean))];
  return poll(env, 10000, async () => {
    const all = await get(`${API}/oee`);
    const tracked = new Set(all.map((r) => r.asset));
    const mine = models.filter((m) => [...env.assets.values()].some((a) => a.model === m && tracked.has(a.path)));
    const benches = await Promise.all(mine.map((m) => get('/api/v1/benchmark/oee', { model: m, by }).catch((e) => ({ model: m, error: e }))));
    replace(compare, benches.map((b) => {
      if (b.error) return notice(b.error.code === 'historian_not_configured' ? 'info' : 'error', `${b.model}: ${b.error.message}`);
      const groups = new Map();
      for (const r of b.rows) (groups.get(r.group) || groups.set(r.group, []).get(r.group)).push(r);
      return h('div.bench', { dataset: { model: b.model } },
        h('h3', `${b.model} · ${b.instances} ${b.instances === 1 ? 'instance' : 'instances'}`, b.truncated ? h('span.muted', ' (truncated)') : null),
        b.rows.length ? [...groups].map(([g, rows]) => h('div.group',
          g && by !== 'asset' ? h('h4', g) : null,
          rows.sort((x, y) => x.rank - y.rank).map((r) => {
            const bar = h('span.fill');
            bar.style.width = `${Math.max(0, Math.min(1, r.oee ?? 0)) * 100}%`;
            return h('div.bar-row', { dataset: { line: r.line, asset: r.asset, rank: r.rank } },
              h('span.rank', `#${r.rank}`),
              h('span.who', env.name(r.line || r.asset), h('span.muted.small', `${r.site} · ${r.asset.split('/').pop()}`)),
              h('span.bar', bar),
              h('span.val', `OEE ${formatPercent(r.oee)}`),
              h('span.apq.muted', `A ${formatPercent(r.availability)} · P ${formatPercent(r.performance)} · Q ${formatPercent(r.quality)} · ${num(r.good)} good, ${num(r.reject)} rejected`));
          })))
          : h('p.muted', by === 'work_order'
              ? 'No work order has been completed or cancelled in the last 24 hours.'
              : 'No closed period in the last 24 hours yet: an hour is compared when it ends.'));
    }), mine.length ? null : h('p.muted', 'No tracked model to compare.'));

    const kinds = { hour: 'Hour', shift: 'Shift', work_order: 'Work order' };
    const byAsset = new Map();
    for (const r of all) (byAsset.get(r.asset) || byAsset.set(r.asset, []).get(r.asset)).push(r);
    replace(reports, [...byAsset].map(([asset, rs]) =>
      h('section.card.oee-card', { dataset: { asset } },
        h('h2', shortPath(asset)),
        h('div.scroll', h('table.oee-table',
          h('thead', h('tr', ['Period', 'From', 'To', 'Availability', 'Performance', 'Quality', 'OEE', 'Good', 'Reject'].map((t, i) => h(i > 6 ? 'th.num' : 'th', t)))),
          h('tbody', rs.flatMap((r) => [
            ...r.current.map((p) => [p, true]),
            ...r.recent.slice(-4).reverse().map((p) => [p, false]),
          ]).map(([p, open]) =>
            h(`tr${open ? '.current' : ''}`, { dataset: { period: p.period } },
              h('th', { scope: 'row' }, kinds[p.period] || p.period, ' ',
                h('span.muted', p.period === 'work_order' ? p.work_order : p.period === 'shift' ? p.shift ?? '' : ''),
                open ? h('span.tag.open', 'open') : null, p.revised ? h('span.tag', 'revised') : null),
              h('td.time', formatTime(p.period_start, { date: false })),
              h('td.time', formatTime(p.period_end, { date: false })),
              h('td', meter(p.availability)),
              h('td', meter(p.performance)),
              h('td', meter(p.quality)),
              h('td.oee', h('strong', formatPercent(p.oee))),
              h('td.num', num(p.good)),
              h('td.num', num(p.reject)))))))),
    ), all.length ? null : h('p.muted', 'No tracked asset has OEE yet.'));
  });
}

// ── Genealogy ───────────────────────────────────────────────────────────────────────────

async function genealogy(env) {
  const { ctx } = env;
  const dir = ['backward', 'forward'].includes(ctx.params.dir) ? ctx.params.dir : 'both';
  const lots = await get(`${API}/lots`);
  const byId = new Map(lots.map((l) => [l.id, l]));
  const newest = [...lots].sort((a, b) => (b.created || '').localeCompare(a.created || ''))[0];
  const lot = ctx.params.lot || newest?.id;
  const go = (id, d = dir) => ctx.navigate(`#/production?tab=genealogy&lot=${encodeURIComponent(id)}&dir=${d}`);
  const input = h('input', { id: 'lot-pick', list: 'lot-ids', value: lot || '', autocomplete: 'off', placeholder: 'Lot id', 'aria-label': 'Lot' });
  const direction = h('select', { id: 'lot-dir', 'aria-label': 'Direction', onchange: () => go(input.value.trim() || lot, direction.value) },
    [['both', 'Both ways'], ['backward', 'Backward: made of'], ['forward', 'Forward: went into']].map(([v, t]) => h('option', { value: v, selected: v === dir }, t)));
  const form = h('form.subbar.lot-form',
    h('label', { for: 'lot-pick' }, 'Lot'), input, h('datalist', { id: 'lot-ids' }, lots.map((l) => h('option', { value: l.id }, l.material))),
    direction, h('button.primary', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (input.value.trim()) go(input.value.trim(), direction.value);
  });
  const graph = h('div.graph');
  replace(env.body, form, graph);
  if (!lot) {
    replace(graph, h('p.muted', 'No lots are recorded yet.'));
    return;
  }
  try {
    const trace = await get(`${API}/lots/${encodeURIComponent(lot)}/trace`, { direction: dir === 'both' ? null : dir });
    const t = [trace.backward, trace.forward].filter(Boolean);
    const me = byId.get(lot) || {};
    replace(graph,
      h('section.card',
        h('div.card-head', h('h2', `Lot ${lot}`, me.material ? h('span.muted.sub', me.material) : null),
          h('span.muted', 'Material flows left to right. Select a lot to centre on it.')),
        t.some((x) => x.truncated) ? notice('info', `The trace stops at depth ${trace.depth}; select an outer lot to follow it further.`) : null,
        t.every((x) => !x.lots.length) ? h('p.muted', `No genealogy is recorded for ${lot} in this direction.`) : null,
        h('div.graph-wrap', drawGenealogy(lot, trace, byId, (id) => go(id)))));
  } catch (e) {
    replace(graph, notice('error', e.message));
  }
}

const VIEWS = { orders, states, downtimes, oee, genealogy };
