// Calls to the gateway's API (same origin only). Every error becomes an `ApiError` with the
// API's stable `code`, its `message` for people and the `field` at fault; a gateway that
// cannot be reached is `ApiError` with code `unreachable` (status 0), so pages can tell
// "the server said no" from "there is no server".

const TIMEOUT_MS = 15000;

let csrfToken = null;
let reachable = true;
const linkListeners = new Set();

export class ApiError extends Error {
  constructor(status, code, message, field, errors) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
    /** Per-field errors of `invalid_entry`: [{field, message}]. */
    this.errors = errors || [];
  }
}

/** The session's CSRF token, sent with every change (`X-CSRF-Token`). */
export function setCsrf(token) {
  csrfToken = token || null;
}

/** Whether the last call reached the gateway. */
export function isReachable() {
  return reachable;
}

/** Calls `listener(reachable)` whenever reachability changes; returns an unsubscribe. */
export function onLink(listener) {
  linkListeners.add(listener);
  return () => linkListeners.delete(listener);
}

function setReachable(value) {
  if (value === reachable) return;
  reachable = value;
  for (const listener of linkListeners) listener(value);
}

/** `?a=1&b=2` from an object; null and undefined values are left out. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === null || value === undefined || value === '') continue;
    if (Array.isArray(value)) for (const v of value) q.append(key, v);
    else q.append(key, String(value));
  }
  const text = q.toString();
  return text ? `?${text}` : '';
}

/** An asset or tag path in a URL: each segment encoded, the slashes kept. */
export function pathUrl(path) {
  return path.split('/').map(encodeURIComponent).join('/');
}

/** Every asset of a tree (`GET /api/v1/assets`) in tree order, parents before children. */
export function flattenAssets(tree) {
  const out = [];
  const walk = (n) => {
    out.push(n);
    (n.children || []).forEach(walk);
  };
  tree.forEach(walk);
  return out;
}

async function call(method, url, body, { timeout = TIMEOUT_MS, raw = false } = {}) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeout);
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      signal: abort.signal,
    });
  } catch (e) {
    setReachable(false);
    throw new ApiError(0, 'unreachable', `the gateway cannot be reached (${e.name === 'AbortError' ? 'no answer in time' : e.message})`);
  } finally {
    clearTimeout(timer);
  }
  setReachable(true);
  if (response.status === 401) window.dispatchEvent(new CustomEvent('backplane:unauthorized'));
  if (!response.ok) {
    let body = {};
    try {
      body = await response.json();
    } catch {
      // Not our JSON (a proxy's page): say the status.
    }
    // `errors` (invalid_entry) stands beside `error`, not inside it.
    const error = body.error || {};
    throw new ApiError(response.status, error.code || `http_${response.status}`, error.message || response.statusText, error.field, body.errors);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get('content-type') || '';
  return type.includes('json') ? response.json() : response.text();
}

/** GET `path` (under the origin, e.g. `/api/v1/assets`) with query parameters. */
export function get(path, params, options) {
  return call('GET', path + query(params), undefined, options);
}

/** POST, PUT or DELETE with an optional JSON body. */
export function send(method, path, body, options) {
  return call(method, path, body, options);
}

/** Who this browser is to the gateway, or null when it must log in. */
export async function whoami() {
  try {
    const me = await get('/api/v1/session');
    setCsrf(me.csrf_token);
    return me;
  } catch (e) {
    if (e.status === 401) return null;
    throw e;
  }
}

export async function login(user, password) {
  const me = await send('POST', '/api/v1/session', { user, password });
  setCsrf(me.csrf_token);
  return me;
}

export async function logout() {
  try {
    await send('DELETE', '/api/v1/session');
  } finally {
    setCsrf(null);
  }
}
