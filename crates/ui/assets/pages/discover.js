// Discover: browse a device from the gateway (a Modbus range scan, an OPC UA tree, an S7 DB
// range) through POST /api/v1/discover, tick the signals to read, pick how each is decoded,
// and copy the TOML (source, model attributes, asset bindings) to paste into the configuration.

import { h, replace, notice, loadCss } from '../lib/dom.js';
import { send } from '../lib/api.js';

/** The options offered per URL scheme: [name, label, placeholder, default]. */
const MODBUS = [
  ['unit', 'Unit id', '1', '1'],
  ['range', 'Range', 'hr:0-99', 'hr:0-99'],
  ['address-base', 'Address base', '0 or 1', '0'],
];
const OPTIONS = {
  tcp: MODBUS,
  modbus: MODBUS,
  'rtu+tcp': MODBUS,
  'opc.tcp': [
    ['node', 'Start node', 'Objects folder (or ns=2;s=Line2, Filler2)', ''],
    ['depth', 'Depth', '3', '3'],
    ['security-policy', 'Security policy', 'strongest offered', ''],
  ],
  s7: [
    ['range', 'Range', 'DB1:0-63 (bytes of DBn, M, I or Q)', 'DB1:0-63'],
    ['rack', 'Rack', '0', '0'],
    ['slot', 'Slot', '1', '1'],
  ],
  nats: [
    ['stream', 'Stream', 'UNS', ''],
    ['prefix', 'Prefix', 'uns', ''],
  ],
};
const DISCOVER_TIMEOUT_MS = 70000; // the gateway stops a discovery after 60 s

const tomlString = (text) => JSON.stringify(text); // a JSON string is a valid TOML basic string

export async function render(root) {
  loadCss('/ui/pages/discover.css');
  const url = h('input.url', { type: 'text', name: 'url', required: true, placeholder: 'tcp://10.0.0.5:502 or opc.tcp://10.0.0.6:4840', 'aria-label': 'Device URL', autocomplete: 'off', spellcheck: 'false' });
  const fields = h('div.options');
  const scan = h('button.primary', { type: 'submit' }, 'Scan');
  const status = h('div');
  const results = h('div');
  const form = h(
    'form.card.discover-form',
    h('label', { for: 'discover-url' }, 'Device URL'),
    h('div.url-row', url, scan),
    fields,
    h('p.muted.small', 'The gateway connects to this address itself; each scan is recorded in the audit trail.'),
  );
  url.id = 'discover-url';
  replace(root, h('div.toolbar', h('h1', 'Discover')), form, status, results);

  let scheme = null;
  const values = {};
  const showOptions = () => {
    const next = (url.value.split('://')[0] || '').toLowerCase();
    if (next === scheme) return;
    scheme = next;
    replace(
      fields,
      (OPTIONS[scheme] || []).map(([name, label, placeholder, value]) => {
        const input = h('input', { type: 'text', name, placeholder, value: values[name] ?? value, id: `opt-${name}` });
        input.addEventListener('input', () => (values[name] = input.value));
        return h('div.field', h('label', { for: `opt-${name}` }, label), input);
      }),
    );
  };
  url.addEventListener('input', showOptions);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const options = {};
    for (const input of fields.querySelectorAll('input')) if (input.value.trim()) options[input.name] = input.value.trim();
    scan.disabled = true;
    replace(status, notice('info', `Scanning ${url.value.trim()}… (at most 60 s)`));
    replace(results);
    try {
      const report = await send('POST', '/api/v1/discover', { url: url.value.trim(), options }, { timeout: DISCOVER_TIMEOUT_MS });
      replace(status);
      showReport(report);
    } catch (e) {
      replace(status, notice('error', e.message));
    } finally {
      scan.disabled = false;
    }
  });

  function showReport(report) {
    const rows = report.signals.map((signal) => {
      const tick = h('input.tick', { type: 'checkbox', 'aria-label': `Use ${signal.address}` });
      const pick =
        signal.decodings.length > 1
          ? h('select.decoding', { 'aria-label': `Decoding of ${signal.address}` }, signal.decodings.map((d, i) => h('option', { value: String(i) }, `${d.label} = ${d.value}`)))
          : h('span.decoding', signal.decodings[0] ? `${signal.decodings[0].label} = ${signal.decodings[0].value}` : '—');
      const row = h(
        'tr',
        { dataset: { address: signal.address, name: signal.name } },
        h('td.pick', h('label.tick-label', tick)),
        h('td.mono', signal.address),
        h('td', h('span.signal-name', signal.name), h('div.muted.small', signal.description)),
        h('td', pick),
      );
      tick.addEventListener('change', () => {
        row.classList.toggle('chosen', tick.checked);
        update();
      });
      if (pick.tagName === 'SELECT') pick.addEventListener('change', update);
      return { signal, tick, pick, row, text: `${signal.address} ${signal.name} ${signal.description}`.toLowerCase() };
    });
    const filter = h('input.search', { type: 'search', placeholder: 'Filter signals…', 'aria-label': 'Filter signals' });
    filter.addEventListener('input', () => {
      const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
      for (const r of rows) r.row.hidden = !words.every((w) => r.text.includes(w));
    });
    const count = h('span.count.muted');
    const output = h('textarea.toml.mono', { readonly: true, rows: 18, wrap: 'off', 'aria-label': 'TOML to paste', spellcheck: 'false' });
    const copied = h('span.copied', { role: 'status' });
    const copy = h('button.primary.copy', { type: 'button', disabled: true }, 'Copy TOML');
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(output.value);
      } catch {
        output.select();
        document.execCommand('copy');
      }
      copied.textContent = 'Copied';
      setTimeout(() => (copied.textContent = ''), 2000);
    });

    function update() {
      const chosen = rows.filter((r) => r.tick.checked).map((r) => ({ signal: r.signal, decoding: r.signal.decodings[r.pick.tagName === 'SELECT' ? Number(r.pick.value) : 0] }));
      count.textContent = `${chosen.length} of ${rows.length} chosen`;
      copy.disabled = chosen.length === 0;
      if (!chosen.length) {
        output.value = '';
        output.placeholder = 'Tick the signals to read: their TOML appears here.';
        return;
      }
      const lines = [report.source.trimEnd(), '', '# Rename the model and its attributes as your plant names them.', '[models.Device.attributes]'];
      for (const { signal, decoding } of chosen) lines.push(`${signal.name} = { type = ${tomlString(decoding.attribute_type || 'string')} }`);
      lines.push('', '[[assets]]', 'path = "area/line/device"   # where the device sits in your asset tree', 'model = "Device"', 'source = "device"');
      for (const { decoding } of chosen) lines.push(`${decoding.binding}   # now ${decoding.value.replace(/[\r\n]+/g, ' ')}`);
      output.value = `${lines.join('\n')}\n`;
    }
    update();

    replace(
      results,
      report.truncated ? notice('info', `The device has ${report.found} signals; the first ${report.signals.length} are listed. Scan a smaller range or fewer levels for the rest.`) : null,
      rows.length
        ? h(
            'div.discover-grid',
            h(
              'section.card.signals',
              h('div.card-head', h('h2', `${rows.length} signals`), count),
              filter,
              h('div.table-wrap', h('table', h('thead', h('tr', h('th', ''), h('th', 'Address'), h('th', 'Name'), h('th', 'Reading now'))), h('tbody', rows.map((r) => r.row)))),
            ),
            h('section.card.output', h('div.card-head', h('h2', 'TOML to paste'), h('div.copy-row', copied, copy)), output),
          )
        : notice('info', 'The device answered, but no signals were found in what was scanned.'),
      h('details.card.report', h('summary', 'Full report'), h('pre.mono', report.text)),
    );
  }
}
