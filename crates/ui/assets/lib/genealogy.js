// A lot's genealogy as an SVG graph: the lot in the middle column, what it is made of to the
// left (one column per depth of the backward trace), what was made from it to the right
// (forward trace). Material flows left to right; links carry their quantity. A click on a
// lot calls `pick(id)`.

import { s } from './dom.js';

const NODE_W = 210;
const NODE_H = 66;
const COL = NODE_W + 90;
const ROW = NODE_H + 22;
const PAD = 12;

const clip = (text, n) => (text.length > n ? text.slice(0, n - 1) + '…' : text);

/**
 * `trace`: the answer of `/lots/{id}/trace` (with `backward` and/or `forward`); `lots`: id →
 * lot (material, status, quantity, unit) as far as known.
 */
export function drawGenealogy(center, trace, lots, pick) {
  const column = new Map([[center, 0]]);
  const edges = [];
  for (const [dir, sign] of [['backward', -1], ['forward', 1]]) {
    const t = trace[dir];
    if (!t) continue;
    for (const l of t.lots) if (!column.has(l.lot)) column.set(l.lot, sign * l.depth);
    // Material flows from the input to the product: backward links go product → input.
    for (const k of t.links) edges.push(sign < 0 ? { src: k.to, dst: k.from, k } : { src: k.from, dst: k.to, k });
  }
  // Columns from the centre outwards; each lot placed near the mean row of its neighbours
  // already placed (a single barycentre pass keeps crossings few on small graphs).
  const cols = [...new Set(column.values())].sort((a, b) => Math.abs(a) - Math.abs(b) || a - b);
  const row = new Map();
  const byCol = new Map();
  for (const c of cols) {
    const ids = [...column].filter(([, v]) => v === c).map(([id]) => id);
    const score = (id) => {
      const near = edges.filter((e) => e.src === id || e.dst === id).map((e) => row.get(e.src === id ? e.dst : e.src)).filter((r) => r !== undefined);
      return near.length ? near.reduce((a, b) => a + b, 0) / near.length : 0;
    };
    ids.sort((a, b) => score(a) - score(b) || a.localeCompare(b));
    byCol.set(c, ids);
    ids.forEach((id, i) => row.set(id, i - (ids.length - 1) / 2));
  }
  const minCol = Math.min(...cols);
  const maxCol = Math.max(...cols);
  const maxRows = Math.max(...[...byCol.values()].map((ids) => ids.length));
  const width = (maxCol - minCol) * COL + NODE_W + 2 * PAD;
  const height = maxRows * ROW - 22 + 2 * PAD;
  const at = (id) => ({ x: PAD + (column.get(id) - minCol) * COL, y: PAD + (row.get(id) + (maxRows - 1) / 2) * ROW });

  const edgeEls = edges
    .filter((e) => column.has(e.src) && column.has(e.dst))
    .map((e) => {
      const a = at(e.src);
      const b = at(e.dst);
      const x1 = a.x + NODE_W;
      const y1 = a.y + NODE_H / 2;
      const x2 = b.x - 4;
      const y2 = b.y + NODE_H / 2;
      const mx = (x1 + x2) / 2;
      const qty = e.k.quantity !== undefined && e.k.quantity !== null ? `${e.k.quantity}${e.k.unit ? ' ' + e.k.unit : ''}` : '';
      return s(
        'g.link',
        { dataset: { from: e.src, to: e.dst } },
        s('path', { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, 'marker-end': 'url(#genealogy-arrow)' }),
        qty ? s('text.qty', { x: mx, y: (y1 + y2) / 2 - 6, 'text-anchor': 'middle' }, qty) : null,
      );
    });
  const nodeEls = [...column.keys()].map((id) => {
    const { x, y } = at(id);
    const lot = lots.get(id) || {};
    const go = () => id !== center && pick(id);
    const details = [lot.status, lot.quantity !== undefined && lot.quantity !== null ? `${lot.quantity}${lot.unit ? ' ' + lot.unit : ''}` : null].filter(Boolean).join(' · ');
    return s(
      `g.lot${id === center ? '.center' : ''}.st-${lot.status || 'unknown'}`,
      {
        transform: `translate(${x},${y})`,
        tabindex: id === center ? -1 : 0,
        role: id === center ? 'img' : 'button',
        'aria-label': `Lot ${id}${lot.material ? ', ' + lot.material : ''}${id === center ? '' : ': show its genealogy'}`,
        dataset: { lot: id, depth: column.get(id) },
        onclick: go,
        onkeydown: (ev) => (ev.key === 'Enter' || ev.key === ' ') && (ev.preventDefault(), go()),
      },
      s('title', [id, lot.material, details].filter(Boolean).join('\n')),
      s('rect', { width: NODE_W, height: NODE_H, rx: 8 }),
      s('text.id', { x: 12, y: 22 }, clip(id, 24)),
      s('text.material', { x: 12, y: 41 }, clip(lot.material || 'unknown material', 28)),
      s('text.status', { x: 12, y: 58 }, clip(details || '—', 30)),
    );
  });
  return s(
    'svg.genealogy',
    { viewBox: `0 0 ${width} ${height}`, width, height, role: 'group', 'aria-label': `Genealogy of lot ${center}` },
    s('defs', s('marker', { id: 'genealogy-arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 8, markerHeight: 8, orient: 'auto' }, s('path', { d: 'M0,0 L10,5 L0,10 z' }))),
    edgeEls,
    nodeEls,
  );
}
