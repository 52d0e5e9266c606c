// The UI's shell: who is logged in, the navigation, and the hash router that loads one page
// module at a time. A page module exports `render(root, ctx)` and may return a function the
// shell calls when the page is left (to close streams and timers).
//
// ctx: { path, params, me, can(role), navigate(hash) }
//   `#/asset/acme-dairy/plant-a?x=1` → page `asset`, path `acme-dairy/plant-a`, params {x: '1'}.

import { h, replace, notice } from './lib/dom.js';
import { whoami, logout, onLink, isReachable } from './lib/api.js';
import { start as startOutbox } from './lib/outbox.js';

/** Every page: `nav` pages are in the menu; `role` is the least role that sees it. */
const PAGES = [
  { name: 'plant', title: 'Plant', nav: true },
  { name: 'trends', title: 'Trends', nav: true },
  { name: 'production', title: 'Production', nav: true },
  { name: 'forms', title: 'Forms', nav: true },
  { name: 'connections', title: 'Connections', nav: true },
  { name: 'discover', title: 'Discover', nav: true, role: 'engineer' },
  { name: 'asset' },
  { name: 'login' },
];

const ROLES = ['viewer', 'operator', 'engineer', 'admin'];
const DEFAULT = 'plant';

let me = null;
let leave = null;
let generation = 0;

/** Whether the logged-in identity has at least `role`. */
function can(role) {
  return !!me && ROLES.indexOf(me.role) >= ROLES.indexOf(role);
}

function parse(hash) {
  const text = hash.replace(/^#\/?/, '');
  const at = text.indexOf('?');
  const route = at < 0 ? text : text.slice(0, at);
  const search = at < 0 ? '' : text.slice(at + 1);
  const [name, ...rest] = route.split('/').map(decodeURIComponent);
  return { name: name || DEFAULT, path: rest.join('/'), params: Object.fromEntries(new URLSearchParams(search)) };
}

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function renderNav(current) {
  const nav = document.getElementById('nav');
  replace(
    nav,
    PAGES.filter((p) => p.nav && (!p.role || can(p.role))).map((p) =>
      h('a', { href: `#/${p.name}`, 'aria-current': p.name === current ? 'page' : false }, p.title),
    ),
  );
  const who = document.getElementById('who');
  if (!me) {
    replace(who);
    return;
  }
  const label = me.method === 'anonymous' ? `open mode (${me.role})` : `${me.user} (${me.role})`;
  replace(
    who,
    h('span.user', { title: `authenticated by ${me.method}` }, label),
    me.method === 'session'
      ? h('button.link-button', { type: 'button', onclick: signOut }, 'Log out')
      : null,
  );
}

async function signOut() {
  await logout().catch(() => {});
  me = null;
  navigate('#/login');
}

async function route() {
  const mine = ++generation;
  const view = document.getElementById('view');
  if (leave) {
    try {
      leave();
    } catch (e) {
      console.error(e);
    }
    leave = null;
  }
  let target = parse(location.hash);
  // The page's module loads while the session is asked for.
  const preload = PAGES.some((p) => p.name === target.name) ? import(`./pages/${target.name}.js`).catch(() => null) : null;
  if (!me && target.name !== 'login') {
    try {
      me = await whoami();
    } catch (e) {
      // Unreachable or broken: pages that can work offline (forms) still render.
      me = null;
    }
    if (mine !== generation) return;
    if (!me && isReachable()) {
      target = { name: 'login', path: '', params: { next: location.hash || '' } };
    }
  }
  const page = PAGES.find((p) => p.name === target.name);
  renderNav(target.name);
  if (!page || (page.role && !can(page.role))) {
    replace(view, notice('error', page ? `This page needs the ${page.role} role.` : `There is no page “${target.name}”.`));
    return;
  }
  document.title = `${page.title || target.name} · Backplane`;
  let module;
  try {
    module = (page.name === target.name && (await preload)) || (await import(`./pages/${page.name}.js`));
  } catch (e) {
    replace(view, notice('error', `The page could not be loaded: ${e.message}`));
    return;
  }
  if (mine !== generation) return;
  replace(view);
  view.className = `page-${page.name}`;
  try {
    const cleanup = await module.render(view, {
      path: target.path,
      params: target.params,
      me,
      can,
      navigate,
      signedIn: (identity) => {
        me = identity;
        renderNav(target.name);
      },
    });
    if (mine === generation) leave = typeof cleanup === 'function' ? cleanup : null;
    else if (typeof cleanup === 'function') cleanup();
  } catch (e) {
    console.error(e);
    if (mine === generation) replace(view, notice('error', e.message));
  }
}

function showLink(up) {
  const link = document.getElementById('link');
  link.className = up ? 'link' : 'link down';
  link.textContent = up ? '' : 'Gateway unreachable';
}

window.addEventListener('hashchange', route);
window.addEventListener('backplane:unauthorized', () => {
  if (parse(location.hash).name === 'login') return;
  me = null;
  navigate(`#/login?next=${encodeURIComponent(location.hash)}`);
});
onLink(showLink);
route();
// Operator entries kept on this device go out from any page, and right after a load.
startOutbox();
// Keeps the UI's files on the device for a reload while the gateway is down (sw.js).
if ('serviceWorker' in navigator && window.isSecureContext) {
  navigator.serviceWorker.register('/ui/sw.js', { scope: '/' }).catch((e) => console.warn('no offline copy of the UI:', e.message));
}
