// Operator forms (`[forms.NAME]`): the list, then one form with big touch targets, the asset
// picker limited to the form's assets, hints from the definition and the gateway's own
// field errors next to each field. Entries are made with a client id and the time Submit
// was pressed; when the gateway cannot be reached they wait in the outbox (lib/outbox.js)
// and are sent when it returns. Definitions and assets are cached on this device, so the
// form renders while the gateway is away.

import { h, replace, notice, loadCss, formatValue, formatTime, shortPath } from '../lib/dom.js';
import { get, isReachable, flattenAssets } from '../lib/api.js';
import * as outbox from '../lib/outbox.js';

const CACHE = 'backplane.forms.';
const RECENT = 20;

function cached(key, value) {
  try {
    if (value !== undefined) localStorage.setItem(CACHE + key, JSON.stringify(value));
    return JSON.parse(localStorage.getItem(CACHE + key));
  } catch {
    return null; // storage full or disabled: work without the cache
  }
}

/** `get(path)`, remembered under `key`; the remembered copy when the gateway is away. */
async function load(path, key) {
  try {
    return { data: cached(key, await get(path)), fresh: true };
  } catch (e) {
    const data = cached(key);
    if (e.code !== 'unreachable' || data === null) throw e;
    return { data, fresh: false };
  }
}

/** A v4 UUID, also where `crypto.randomUUID` is missing (plain http on a LAN address). */
function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 15) | 64;
  b[8] = (b[8] & 63) | 128;
  const x = [...b].map((v) => v.toString(16).padStart(2, '0')).join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

const unitText = (u) => (u ? ` ${u}` : '');
const NUMBER = /^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$/;

export async function render(root, ctx) {
  loadCss('/ui/pages/forms.css');
  const status = h('div');
  replace(root, h('p.muted', 'Loading…'));
  let forms;
  let fresh;
  try {
    ({ data: forms, fresh } = await load('/api/v1/forms', 'list'));
  } catch (e) {
    replace(root, notice('error', e.code === 'unreachable' ? 'The gateway cannot be reached and this device has not seen the forms yet.' : e.message));
    return;
  }
  const offline = fresh ? null : notice('info', 'The gateway cannot be reached: the forms are shown as this device last saw them. Entries are kept here and sent when it returns.');
  const outboxCard = h('section.card.outbox', { 'aria-label': 'Waiting to send' });
  const form = forms.find((f) => f.name === ctx.path);
  const stops = [];
  let fill = null; // set by the form view: loads a refused entry back in to fix

  const drawOutbox = async () => {
    let kept;
    try {
      kept = (await outbox.list()).filter((e) => !form || e.form === form.name);
    } catch (e) {
      replace(outboxCard, notice('error', e.message));
      return;
    }
    outboxCard.hidden = !kept.length;
    replace(
      outboxCard,
      h('div.card-head', h('h2', `Waiting to send (${kept.length})`), h('button', { type: 'button', onclick: () => outbox.flush() }, 'Send now')),
      h('p.muted', 'Kept on this device until the gateway has them.'),
      h(
        'ul.pending',
        kept.map((e) =>
          h(
            `li.pending-entry.${e.state}`,
            { dataset: { id: e.id, time: e.time } },
            h('div.pending-head', h('span.badge', e.state === 'refused' ? 'refused: fix it' : e.state), h('strong', formatTime(e.time)), h('span', e.form), h('span.muted', shortPath(e.asset || ''))),
            h('div.muted.values-line', Object.entries(e.values).map(([k, v]) => `${k} ${formatValue(v)}`).join(' · ')),
            e.state === 'refused'
              ? [
                  h('ul.errors', e.errors.map((x) => h('li', x.message))),
                  h(
                    'div.actions',
                    fill && e.form === form?.name ? h('button.primary', { type: 'button', onclick: () => fill(e) }, 'Fix') : h('a.button', { href: `#/forms/${encodeURIComponent(e.form)}` }, 'Open the form'),
                    h('button', { type: 'button', onclick: () => confirm('Discard this entry? It was never recorded.') && outbox.drop(e.id) }, 'Discard'),
                  ),
                ]
              : h('div.muted', { title: e.message || '' }, e.state === 'sending' ? 'Sending…' : 'Not sent yet: tried again automatically.'),
          ),
        ),
      ),
    );
  };
  stops.push(outbox.onChange(drawOutbox));

  if (!form) {
    replace(
      root,
      h('div.toolbar', h('h1', 'Forms')),
      offline,
      status,
      ctx.path ? notice('error', `There is no form “${ctx.path}”.`) : null,
      forms.length ? null : notice('info', 'No forms are configured ([forms.NAME] in the configuration).'),
      outboxCard,
      h(
        'div.form-list',
        forms.map((f) =>
          h(
            'a.card.form-card',
            { href: `#/forms/${encodeURIComponent(f.name)}`, dataset: { form: f.name } },
            h('h2', f.name),
            f.description ? h('p', f.description) : null,
            h('p.muted', `${f.fields.length} field${f.fields.length === 1 ? '' : 's'}${f.assets.length ? ` · for ${f.assets.map((p) => shortPath(p)).join(', ')}` : ''}`),
          ),
        ),
      ),
    );
    await drawOutbox();
    return () => stops.forEach((s) => s());
  }

  // ── One form ──
  let assets = [];
  try {
    assets = flattenAssets((await load('/api/v1/assets', 'assets')).data).map((n) => [n.path, n.level]);
  } catch {
    // No tree at all: the form's own assets are still choices.
  }
  const allowed = (p) => !form.assets.length || form.assets.some((a) => p === a || p.startsWith(`${a}/`));
  let choices = assets.filter(([p]) => allowed(p));
  if (!choices.length) choices = form.assets.map((p) => [p, '']);
  const remembered = cached(`asset.${form.name}`);
  const picker = h(
    'select',
    { id: 'form-asset', name: 'asset' },
    choices.length === 1 ? null : h('option', { value: '' }, 'Choose where…'),
    choices.map(([p, level]) => h('option', { value: p, selected: p === remembered }, `${shortPath(p)}${level ? ` (${level})` : ''}`)),
  );

  const fields = new Map(); // name → {spec, read(), write(v), error, hint}
  const fieldError = () => h('p.field-error', { role: 'alert', hidden: true });
  const assetError = fieldError();
  const controls = form.fields.map((f) => {
    const id = `field-${f.name}`;
    const error = fieldError();
    const hint = h('p.hint');
    const parts = [f.required ? 'required' : 'optional'];
    if (f.range) parts.push(`${formatValue(f.range[0])} to ${formatValue(f.range[1])}${unitText(f.unit)}`);
    else if (f.unit) parts.push(`in ${f.unit}`);
    if (f.type === 'int') parts.push('whole number');
    if (f.description) parts.push(f.description);
    const base = parts.join(' · ');
    hint.textContent = base;
    let control;
    let read;
    let write;
    const options = f.type === 'bool' ? [['true', 'Yes'], ['false', 'No']] : f.type === 'choice' ? f.choices.map((c) => [c, c]) : null;
    if (options && (f.required || f.type === 'bool') && options.length <= 6) {
      const radios = options.map(([v, text]) => h('label.choice', h('input', { type: 'radio', name: id, value: v }), h('span', text)));
      control = h('div.choices', { role: 'radiogroup', 'aria-labelledby': `${id}-label` }, radios);
      const pick = () => radios.map((r) => r.firstChild).find((r) => r.checked)?.value;
      read = () => (f.type === 'bool' ? (pick() === undefined ? undefined : pick() === 'true') : pick());
      write = (v) => radios.forEach((r) => (r.firstChild.checked = v !== undefined && r.firstChild.value === String(v)));
    } else if (options) {
      control = h('select', { id, name: f.name }, h('option', { value: '' }, '—'), options.map(([v, text]) => h('option', { value: v }, text)));
      read = () => (control.value === '' ? undefined : f.type === 'bool' ? control.value === 'true' : control.value);
      write = (v) => (control.value = v === undefined ? '' : String(v));
    } else {
      const numeric = f.type === 'float' || f.type === 'int';
      const input = h(f.type === 'string' && !f.required ? 'textarea' : 'input', {
        id,
        name: f.name,
        autocomplete: 'off',
        inputmode: numeric ? (f.type === 'int' ? 'numeric' : 'decimal') : null,
        rows: f.type === 'string' && !f.required ? 2 : null,
        maxlength: f.type === 'string' ? 2000 : null,
      });
      control = numeric ? h('div.with-unit', input, f.unit ? h('span.unit', f.unit) : null) : input;
      read = () => {
        const text = input.value.trim();
        if (!text) return undefined;
        return numeric && NUMBER.test(text) ? Number(text.replace(',', '.')) : text;
      };
      write = (v) => (input.value = v === undefined || v === null ? '' : String(v));
      if (numeric)
        input.addEventListener('input', () => {
          // A hint only: the gateway decides, and says why next to the field.
          const v = read();
          let warn = '';
          if (typeof v === 'string') warn = 'not a number';
          else if (v !== undefined && f.range && (v < f.range[0] || v > f.range[1])) warn = 'out of range';
          else if (v !== undefined && f.type === 'int' && !Number.isInteger(v)) warn = 'not a whole number';
          hint.textContent = warn ? `${base} — ${warn}` : base;
          hint.classList.toggle('warn', !!warn);
        });
    }
    fields.set(f.name, { read, write, error, hint });
    return h(
      'div.field',
      { dataset: { field: f.name } },
      h(options ? 'span.label' : 'label', { for: options ? null : id, id: `${id}-label` }, f.label || f.name, f.required ? h('span.req', { 'aria-hidden': 'true' }, ' *') : null),
      control,
      hint,
      error,
    );
  });

  const submit = h('button.primary.submit', { type: 'submit' }, 'Submit');
  let fixing = null; // the refused entry being fixed: its original time is kept
  const clearErrors = () => {
    for (const el of [assetError, ...[...fields.values()].map((f) => f.error)]) {
      el.hidden = true;
      el.textContent = '';
      el.parentElement?.classList.remove('invalid');
    }
  };
  const showErrors = (errors) => {
    clearErrors();
    const other = [];
    for (const e of errors) {
      const el = e.field === 'asset' ? assetError : fields.get(e.field)?.error;
      if (!el) {
        other.push(e.message);
        continue;
      }
      el.hidden = false;
      el.textContent = el.textContent ? `${el.textContent} ${e.message}` : e.message;
      el.parentElement.classList.add('invalid');
    }
    replace(status, notice('error', `Not recorded: ${errors.length === 1 ? 'one problem' : `${errors.length} problems`}, shown at the fields.`), other.map((m) => notice('error', m)));
    root.querySelector('.field.invalid')?.scrollIntoView({ block: 'center' });
  };
  fill = (entry) => {
    fixing = entry;
    picker.value = entry.asset;
    for (const [name, f] of fields) f.write(entry.values[name]);
    outbox.drop(entry.id);
    showErrors(entry.errors);
  };
  const reset = () => {
    for (const f of fields.values()) f.write(undefined);
    for (const f of fields.values()) f.hint.classList.remove('warn');
    fixing = null;
    clearErrors();
  };

  const recentBody = h('tbody');
  const recentState = h('div');
  const drawRecent = async () => {
    try {
      const list = await get(`/api/v1/forms/${encodeURIComponent(form.name)}/entries`, { limit: RECENT });
      replace(recentState, list.length ? null : h('p.muted', 'No entries yet.'));
      recentBody.parentElement.hidden = !list.length;
      replace(
        recentBody,
        list.map((e) =>
          h(
            'tr',
            { dataset: { entry: e.entry } },
            h('td.num', e.entry),
            h('td.nowrap', formatTime(e.time)),
            h('td', shortPath(e.asset)),
            h('td', e.user),
            form.fields.map((f) => h(typeof e.values[f.name] === 'number' ? 'td.num' : 'td', formatValue(e.values[f.name] ?? null))),
          ),
        ),
      );
    } catch (e) {
      replace(recentState, notice('info', e.code === 'unreachable' ? 'Recent entries are not available while the gateway cannot be reached.' : e.message));
    }
  };

  const el = h(
    'form.card.entry-form',
    {
      novalidate: true,
      onsubmit: async (ev) => {
        ev.preventDefault();
        const values = {};
        for (const [name, f] of fields) {
          const v = f.read();
          if (v !== undefined) values[name] = v;
        }
        const timeError = fixing?.errors.some((e) => e.field === 'time');
        const entry = { id: uuid(), form: form.name, asset: picker.value, values, time: fixing && !timeError ? fixing.time : new Date().toISOString() };
        if (picker.value) cached(`asset.${form.name}`, picker.value);
        submit.disabled = true;
        replace(status, notice('info', 'Sending…'));
        try {
          const done = await outbox.submit(entry);
          reset();
          replace(
            status,
            done.queued
              ? notice('info', `The gateway cannot be reached: the entry of ${formatTime(entry.time)} is kept on this device and sent when it returns.`)
              : notice('ok', `Entry ${done.recorded.entry} recorded at ${formatTime(done.recorded.time)}.`),
          );
          if (!done.queued) drawRecent();
        } catch (e) {
          if (e.errors.length) showErrors(e.errors);
          else if (e.field) showErrors([{ field: e.field, message: e.message }]);
          else replace(status, notice('error', e.message));
        } finally {
          submit.disabled = false;
        }
      },
    },
    h('div.field', { dataset: { field: 'asset' } }, h('label', { for: 'form-asset' }, 'Where', h('span.req', { 'aria-hidden': 'true' }, ' *')), picker, assetError),
    controls,
    h('div.actions', submit, h('button', { type: 'reset', onclick: () => setTimeout(reset) }, 'Clear')),
  );

  replace(
    root,
    h('nav.crumbs', h('a', { href: '#/forms' }, 'Forms'), ' / ', h('span', form.name)),
    h('div.toolbar', h('h1', form.name), form.description ? h('p.muted', form.description) : null),
    offline,
    ctx.me && !ctx.can('operator') ? notice('info', `Submitting needs the operator role; you are ${ctx.me.role}.`) : null,
    h(
      'div.form-layout',
      h('div', status, el),
      h(
        'div',
        outboxCard,
        h(
          'aside.card.about',
          h('h2', 'This form'),
          h('p', form.assets.length ? `For ${form.assets.map((p) => shortPath(p)).join(', ')} and below.` : 'For any asset.'),
          h('p.muted', 'Each entry is recorded with the time Submit was pressed. Without a link to the gateway, entries are kept on this device and sent when it returns.'),
        ),
      ),
    ),
    h(
      'section.card.recent',
      h('h2', 'Recent entries'),
      recentState,
      h('div.scroll', h('table.entries', h('thead', h('tr', h('th.num', 'Entry'), h('th', 'Time'), h('th', 'Where'), h('th', 'User'), form.fields.map((f) => h(f.type === 'float' || f.type === 'int' ? 'th.num' : 'th', `${f.label || f.name}${unitText(f.unit)}`)))), recentBody)),
    ),
  );
  await drawOutbox();
  drawRecent();
  // Entries sent from the outbox show up in the recent list.
  const kept = async () => (await outbox.list().catch(() => [])).length;
  let count = await kept();
  stops.push(
    outbox.onChange(async () => {
      const n = await kept();
      if (n < count && isReachable()) drawRecent();
      count = n;
    }),
  );
  return () => stops.forEach((s) => s());
}
