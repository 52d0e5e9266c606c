// The downtime reason tree (`/api/v1/production/reasons`) as a touch-friendly picker: one
// large button per reason, a reason with children opens them (a trail leads back), and the
// chosen reason is assigned only when "Assign" is pressed.

import { h, replace } from './dom.js';
import { openDialog } from './dialog.js';

/** code → {description, planned} of every node of the tree. */
export function reasonIndex(tree) {
  const index = new Map();
  const walk = (nodes) => nodes.forEach((n) => (index.set(n.code, n), walk(n.reasons || [])));
  walk(tree);
  return index;
}

/** Lets the user pick a reason; resolves with its code, or null when cancelled. */
export async function pickReason(tree, title, current) {
  const index = reasonIndex(tree);
  let chosen = current && index.has(current) ? current : null;
  // Open the branch of the current reason.
  const trail = [];
  for (let code = chosen && chosen.split('/').slice(0, -1).join('/'); code; code = code.split('/').slice(0, -1).join('/')) {
    if (index.has(code)) trail.unshift(index.get(code));
  }
  const body = h('div.reason-picker');
  const draw = () => {
    const nodes = trail.length ? trail[trail.length - 1].reasons : tree;
    replace(
      body,
      h(
        'nav.trail',
        { 'aria-label': 'Reason groups' },
        h('button.crumb', { type: 'button', onclick: () => ((trail.length = 0), draw()) }, 'All reasons'),
        trail.map((n, i) => [' › ', h('button.crumb', { type: 'button', onclick: () => ((trail.length = i + 1), draw()) }, n.description || n.name)]),
      ),
      h(
        'div.reason-list',
        { role: 'listbox', 'aria-label': 'Reasons' },
        nodes.map((n) =>
          h(
            'button.reason',
            {
              type: 'button',
              role: 'option',
              'aria-selected': n.code === chosen ? 'true' : 'false',
              dataset: { code: n.code },
              onclick: () => {
                chosen = n.code;
                if (n.reasons?.length) trail.push(n);
                draw();
              },
            },
            h('span.reason-name', n.description || n.name),
            h('span.reason-code', n.code),
            n.planned ? h('span.tag.planned', 'planned') : null,
            n.reasons?.length ? h('span.more', { 'aria-hidden': 'true' }, '›') : null,
          ),
        ),
      ),
      h('p.chosen', chosen ? ['Chosen: ', h('strong', index.get(chosen).description || chosen), ` (${chosen})`] : 'Choose a reason.'),
    );
    if (assign) assign.disabled = !chosen;
  };
  let assign = null;
  draw();
  const answer = openDialog(title, body, [
    { label: 'Go back', value: false },
    { label: 'Assign', value: true, kind: 'primary' },
  ], { className: 'reasons' });
  assign = document.querySelector('dialog.reasons footer button.primary');
  assign.disabled = !chosen;
  return (await answer) && chosen ? chosen : null;
}
