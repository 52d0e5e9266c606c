// Modal dialogs: a confirmation step before a change ("Start WO-1001 on line 1? …") and a
// general dialog with a body and buttons. Closing with Escape, × or "Go back" is always "no".

import { h } from './dom.js';

/**
 * Opens a modal dialog. `buttons`: [{label, value, kind}] ('primary' or 'danger'); resolves
 * with the value of the button pressed, or null when closed otherwise.
 */
export function openDialog(title, body, buttons, { className = '' } = {}) {
  return new Promise((resolve) => {
    let result = null;
    const dialog = h(
      `dialog.modal${className ? '.' + className : ''}`,
      { 'aria-label': title },
      h('header', h('h2', title), h('button.close', { type: 'button', 'aria-label': 'Close', onclick: () => dialog.close() }, '×')),
      h('div.modal-body', body),
      h(
        'footer',
        buttons.map((b) =>
          h(`button${b.kind ? '.' + b.kind : ''}`, { type: 'button', dataset: { answer: String(b.value) }, onclick: () => { result = b.value; dialog.close(); } }, b.label),
        ),
      ),
    );
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(result);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** Asks before a change: resolves true only when `yes` was pressed. */
export async function confirmChange(title, text, yes, kind = 'primary') {
  const answer = await openDialog(title, h('p', text), [
    { label: 'Go back', value: false },
    { label: yes, value: true, kind },
  ], { className: 'confirm' });
  return answer === true;
}
