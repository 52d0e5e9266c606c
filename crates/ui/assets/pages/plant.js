// The plant: the ISA-95 asset tree with each tracked equipment's machine state, and search.
// States are re-read every 2 s (one small request, however large the plant).

import { h, replace, notice, formatDuration } from '../lib/dom.js';
import { get, pathUrl } from '../lib/api.js';

const STATE_REFRESH_MS = 2000;

export async function render(root) {
  const search = h('input.search', { type: 'search', placeholder: 'Search assets, models, descriptions…', 'aria-label': 'Search assets' });
  const status = h('div');
  const tree = h('div.tree', { role: 'tree', 'aria-label': 'Asset tree' });
  replace(root, h('div.toolbar', h('h1', 'Plant'), search), status, tree);

  const roots = await get('/api/v1/assets');
  const badges = new Map(); // asset path → badge element
  const rows = []; // {node, element, text}

  const build = (node) => {
    const badge = h('span.state', { hidden: true });
    badges.set(node.path, badge);
    const label = h(
      'a.node',
      { href: `#/asset/${pathUrl(node.path)}`, dataset: { path: node.path } },
      h('span.level', node.level.replaceAll('-', ' ')),
      h('span.name', node.name),
      node.description ? h('span.description', node.description) : null,
      node.model ? h('span.model', node.model) : null,
      badge,
    );
    const children = (node.children || []).map(build);
    const element = children.length
      ? h('details.branch', { open: true, role: 'treeitem' }, h('summary', label), h('div.children', { role: 'group' }, children))
      : h('div.leaf', { role: 'treeitem' }, label);
    rows.push({ node, element, text: `${node.path} ${node.description || ''} ${node.model || ''}`.toLowerCase() });
    return element;
  };
  replace(tree, roots.map(build));
  if (!roots.length) replace(status, notice('info', 'No assets are configured.'));

  search.addEventListener('input', () => {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    // A match shows itself and its ancestors; everything else is hidden.
    const shown = new Set();
    for (const row of rows) {
      if (words.every((w) => row.text.includes(w))) {
        const parts = row.node.path.split('/');
        for (let i = 1; i <= parts.length; i++) shown.add(parts.slice(0, i).join('/'));
      }
    }
    for (const row of rows) {
      row.element.hidden = words.length > 0 && !shown.has(row.node.path);
      if (words.length && row.element.tagName === 'DETAILS') row.element.open = true;
    }
  });

  let timer = null;
  let stopped = false;
  const refreshStates = async () => {
    try {
      const states = await get('/api/v1/production/states');
      for (const s of states) {
        const badge = badges.get(s.asset);
        if (!badge) continue;
        badge.hidden = false;
        badge.className = `state cat-${s.category || 'none'}`;
        const since = s.since ? ` for ${formatDuration((Date.now() - Date.parse(s.since)) / 1000)}` : '';
        badge.title = `${s.state ?? 'unknown'}${since}${s.work_order ? `, work order ${s.work_order}` : ''}`;
        badge.textContent = s.state ?? 'unknown';
      }
    } catch (e) {
      if (e.code === 'production_not_configured') return; // no states to show, no retry
    }
    if (!stopped) timer = setTimeout(refreshStates, STATE_REFRESH_MS);
  };
  refreshStates();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
