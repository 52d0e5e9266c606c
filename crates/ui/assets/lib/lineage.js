// The lineage of one value (`/api/v1/lineage/{tag}`): source and address, raw reading, each
// transform step with its input and output, configuration version, and whether the steps
// reproduce the value; for a derived attribute, its expression and the inputs it read.

import { h, replace, notice, formatValue, formatTime, qualityBadge } from './dom.js';
import { get, pathUrl } from './api.js';

/** What a transform step did, in words. */
function describe(t) {
  switch (t.op) {
    case 'decode':
      return `decode ${t.kind}${t.word_order ? ` (${t.word_order})` : ''}`;
    case 'bit':
      return `bit ${t.index}`;
    case 'scale':
      return `scale × ${t.gain}${t.offset ? ` + ${t.offset}` : ''}`;
    case 'convert':
      return `convert ${t.from} → ${t.to}`;
    case 'map':
      return 'map';
    case 'cast':
      return `cast to ${t.to}`;
    case 'round':
      return `round to ${t.decimals} decimals`;
    default:
      return t.op || JSON.stringify(t);
  }
}

/** A derived attribute's lineage: the expression and each input with its value. */
function derived(l) {
  const d = l.derivation;
  return [
    h('p.tag', l.path),
    h(
      'dl.facts',
      h('dt', 'Expression'),
      h('dd.mono', d.expression),
      h('dt', 'Value'),
      h('dd.mono', formatValue(l.value), ' ', qualityBadge(l.quality, l.quality_reason)),
      h('dt', 'Gateway time'),
      h('dd', formatTime(l.gateway_time, { ms: true })),
      h('dt', 'Configuration'),
      h('dd.mono', { title: l.config_version }, (l.config_version || '—').slice(0, 12)),
    ),
    h(
      'table.steps.inputs',
      h('caption', 'Inputs'),
      h('thead', h('tr', h('th', 'Input'), h('th.num', 'Value'), h('th', 'Quality'), h('th', 'Time'))),
      h(
        'tbody',
        (d.inputs || []).map((input) =>
          h(
            'tr',
            h('td.mono', input.path, input.role ? ` (${input.role})` : ''),
            h('td.num.mono', formatValue(input.value)),
            h('td', qualityBadge(input.quality, input.quality_reason)),
            h('td', formatTime(input.time, { ms: true })),
          ),
        ),
      ),
    ),
    d.error ? notice('error', d.error) : null,
  ];
}

/** Opens a dialog with the lineage of `tag` (`asset/attribute`). */
export async function showLineage(tag) {
  const body = h('div.lineage-body', h('p.muted', 'Loading…'));
  const dialog = h(
    'dialog.lineage',
    { 'aria-label': `Lineage of ${tag}` },
    h('header', h('h2', 'Where this value came from'), h('button.close', { type: 'button', 'aria-label': 'Close', onclick: () => dialog.close() }, '×')),
    body,
  );
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  try {
    const l = await get(`/api/v1/lineage/${pathUrl(tag)}`);
    if (l.derivation) {
      replace(body, ...derived(l));
      return;
    }
    const src = l.source || {};
    replace(
      body,
      h('p.tag', l.path),
      h(
        'dl.facts',
        h('dt', 'Source'),
        h('dd', `${src.name ?? '—'} (${src.kind ?? '?'})`),
        h('dt', 'Address'),
        h('dd.mono', src.address ?? '—'),
        h('dt', 'Raw reading'),
        h('dd.mono', formatValue(l.raw)),
        h('dt', 'Value'),
        h('dd.mono', formatValue(l.value), ' ', qualityBadge(l.quality, l.quality_reason)),
        h('dt', 'Source time'),
        h('dd', formatTime(l.source_time, { ms: true })),
        h('dt', 'Gateway time'),
        h('dd', formatTime(l.gateway_time, { ms: true })),
        h('dt', 'Configuration'),
        h('dd.mono', { title: l.config_version }, (l.config_version || '—').slice(0, 12)),
        l.deadband ? [h('dt', 'Deadband'), h('dd.mono', JSON.stringify(l.deadband))] : null,
      ),
      h(
        'table.steps',
        h('caption', 'Transform steps'),
        h('thead', h('tr', h('th', '#'), h('th', 'Step'), h('th.num', 'Input'), h('th.num', 'Output'))),
        h(
          'tbody',
          (l.steps || []).map((step, i) =>
            h(
              `tr${step.error ? '.failed' : ''}`,
              { dataset: { op: step.transform?.op || '' } },
              h('td', String(i + 1)),
              h('td', { title: JSON.stringify(step.transform) }, describe(step.transform || {}), step.error ? h('div.error', step.error) : null),
              h('td.num.mono', formatValue(step.input)),
              h('td.num.mono', formatValue(step.output)),
            ),
          ),
        ),
      ),
      l.error ? notice('error', l.error) : null,
      h('p', l.reproduces ? 'Running these steps on the raw reading gives the value shown.' : 'The steps do not reproduce the value shown (see the error above, or a newer reading arrived).'),
    );
  } catch (e) {
    replace(body, notice('error', e.message));
  }
}
