// One asset: where it sits, the context in force, and every attribute of its model with its
// live value, unit, quality (and why), source and gateway time. Click a value for its lineage.

import { h, replace, formatValue, formatTime, qualityBadge } from '../lib/dom.js';
import { get, pathUrl } from '../lib/api.js';
import { follow, coalesce } from '../lib/live.js';
import { showLineage } from '../lib/lineage.js';

const CONTEXT_FIELDS = ['work_order', 'product', 'batch', 'lot', 'shift', 'operator', 'machine_state'];

export async function render(root, ctx) {
  const path = ctx.path;
  if (!path) {
    ctx.navigate('#/plant');
    return;
  }
  let asset = await get(`/api/v1/assets/${pathUrl(path)}`);
  const head = h('div');
  const contextCard = h('section.card.context', { 'aria-label': 'Context' });
  const table = h('tbody');
  const children = h('div');
  const live = h('span.live', { title: 'Live updates' });
  replace(
    root,
    head,
    contextCard,
    h(
      'section.card',
      h('div.card-head', h('h2', 'Attributes'), live),
      Object.keys(asset.attributes).length
        ? h(
            'table.values',
            h('thead', h('tr', h('th', 'Attribute'), h('th.num', 'Value'), h('th', 'Unit'), h('th', 'Quality'), h('th', 'Source time'), h('th', 'Gateway time'), h('th', ''))),
            table,
          )
        : h('p.muted', asset.model ? 'This model has no attributes.' : 'This asset has no model, so no attributes.'),
    ),
    children,
  );

  const crumbs = path.split('/').map((part, i, parts) => {
    const p = parts.slice(0, i + 1).join('/');
    return i === parts.length - 1 ? h('span', part) : [h('a', { href: `#/asset/${pathUrl(p)}` }, part), ' / '];
  });
  replace(
    head,
    h('nav.crumbs', { 'aria-label': 'Where this asset sits' }, h('a', { href: '#/plant' }, 'Plant'), ' / ', crumbs),
    h('h1', asset.name, ' ', h('span.level', asset.level)),
    asset.description || asset.model ? h('p.muted', [asset.description, asset.model ? `model ${asset.model}` : null].filter(Boolean).join(' · ')) : null,
  );

  // One row per attribute, in model order, updated in place.
  const rows = new Map();
  for (const [name, a] of Object.entries(asset.attributes)) {
    const cells = {
      value: h('button.value.num', { type: 'button', title: 'Where this value came from', onclick: () => showLineage(`${path}/${name}`) }),
      unit: h('td'),
      quality: h('td'),
      source: h('span.t'),
      gateway: h('span.t'),
    };
    const row = h(
      'tr',
      { dataset: { attribute: name } },
      h('th', { scope: 'row', title: a.description || '' }, name, a.description ? h('div.description', a.description) : null),
      h('td.num', cells.value),
      cells.unit,
      cells.quality,
      h('td.time', cells.source),
      h('td.time', cells.gateway),
      h('td', h('a.trend', { href: `#/trends?tags=${encodeURIComponent(`${path}/${name}`)}`, title: 'Trend' }, 'Trend')),
    );
    rows.set(name, { row, cells, current: a });
    table.append(row);
  }

  // Only what changed is touched: with 50 values at 1 Hz most cells stay as they are, and
  // an untouched cell costs the browser no layout or paint.
  const set = (el, text) => {
    if (el.textContent !== text) el.textContent = text;
  };
  const draw = (name) => {
    const r = rows.get(name);
    const a = r.current;
    set(r.cells.value, formatValue(a.value));
    const rowClass = `q-row-${a.quality}`;
    if (r.row.className !== rowClass) r.row.className = rowClass;
    set(r.cells.unit, a.unit || '');
    const q = `${a.quality} ${a.quality_reason || ''}`;
    if (r.shownQuality !== q) {
      r.shownQuality = q;
      replace(r.cells.quality, qualityBadge(a.quality, a.quality_reason));
    }
    set(r.cells.source, formatTime(a.source_time, { ms: true }));
    set(r.cells.gateway, formatTime(a.gateway_time, { ms: true }));
  };
  const drawContext = () => {
    const c = asset.context || {};
    const fields = CONTEXT_FIELDS.filter((f) => c[f] !== undefined && c[f] !== null);
    replace(
      contextCard,
      h('h2', 'Context in force'),
      fields.length
        ? h('dl.context-fields', fields.map((f) => [h('dt', f.replaceAll('_', ' ')), h('dd', { dataset: { field: f } }, String(c[f]))]))
        : h('p.muted', 'No production context is set here.'),
    );
  };
  drawContext();
  for (const name of rows.keys()) draw(name);

  if (asset.children?.length) {
    replace(
      children,
      h(
        'section.card',
        h('h2', 'Below'),
        h('ul.children', asset.children.map((c) => h('li', h('a', { href: `#/asset/${pathUrl(c.path)}` }, c.name), c.model ? h('span.model', c.model) : null))),
      ),
    );
  }

  // Live: samples of this asset update their row; a context change here or above (a work
  // order started on the line) re-reads the asset for the context in force (at most once
  // per frame). Other events (counts, OEE) change nothing shown here.
  const dirty = new Set();
  // One draw per poll's burst of samples, at most 4 a second: every poll of a source at
  // 250 ms or slower is shown, for a fraction of the CPU of one draw per sample.
  const redraw = coalesce(
    () => {
      for (const name of dirty) draw(name);
      dirty.clear();
    },
    { settleMs: 30, minIntervalMs: 250 },
  );
  const reread = coalesce(async () => {
    try {
      asset = await get(`/api/v1/assets/${pathUrl(path)}`);
    } catch {
      return;
    }
    for (const [name, a] of Object.entries(asset.attributes)) {
      const r = rows.get(name);
      if (r) {
        r.current = a;
        draw(name);
      }
    }
    drawContext();
  });
  const stop = follow(path, {
    sample: (s) => {
      if (s.asset !== path) return;
      const r = rows.get(s.attribute);
      if (!r) return;
      r.current = { ...r.current, value: s.value, unit: s.unit, quality: s.quality, quality_reason: s.quality_reason, source_time: s.source_time, gateway_time: s.gateway_time, context: s.context };
      dirty.add(s.attribute);
      redraw();
    },
    event: (e) => e.event === 'context_changed' && reread(),
    resync: () => reread(),
    state: (open) => {
      live.className = open ? 'live on' : 'live off';
      live.textContent = open ? 'live' : 'reconnecting…';
    },
  });
  return stop;
}
