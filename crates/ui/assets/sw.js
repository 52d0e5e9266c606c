// The service worker: keeps the UI's own files on the device so a tablet whose page is
// reloaded while the gateway is down still opens (the operator forms then queue entries in
// the outbox). Network first: while the gateway answers, every file comes from it (an
// upgrade shows at once); only when it cannot be reached is the last copy served. API calls
// are never cached or answered here. Browsers run service workers only in a secure context
// (HTTPS, or http on localhost), so on plain http over a LAN this does nothing.

const CACHE = 'backplane-ui-v1';
// What a tablet needs to open the forms offline, kept at install; other pages are kept
// once they have been opened.
const CORE = ['/', '/ui/app.js', '/ui/style.css', '/ui/icon.svg', '/ui/lib/api.js', '/ui/lib/dom.js', '/ui/lib/live.js', '/ui/lib/outbox.js', '/ui/pages/forms.js', '/ui/pages/forms.css', '/ui/pages/login.js'];

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => Promise.all(CORE.map((url) => cache.add(url).catch(() => undefined))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  const ui = url.pathname === '/' || url.pathname.startsWith('/ui/');
  if (event.request.method !== 'GET' || url.origin !== self.location.origin || !ui) return;
  const key = url.pathname; // the hash and query never change a UI file
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      try {
        const response = await fetch(event.request);
        if (response.ok) await cache.put(key, response.clone());
        return response;
      } catch (error) {
        const kept = await cache.match(key);
        if (kept) return kept;
        throw error;
      }
    })(),
  );
});
