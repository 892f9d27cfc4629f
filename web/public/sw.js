// udc's service worker: the app shell only, so the app opens offline or on a slow network.
// Built assets (/assets/*) never change under their name: cache first. The page itself:
// network first, the cached copy when offline. Nothing else is touched: API answers, the
// object store's bytes and keys never pass through this cache.
const CACHE = "udc-shell-v1";
const SHELL = ["/", "/manifest.webmanifest", "/icon.svg"];

/** The page and the files it names (its script and style): what opening the app needs. */
async function precache() {
  const cache = await caches.open(CACHE);
  await cache.addAll(SHELL);
  const page = await (await cache.match("/")).text();
  const assets = [...page.matchAll(/"(\/assets\/[^"]+)"/g)].map((m) => m[1]);
  await cache.addAll(assets);
}

self.addEventListener("install", (event) => {
  event.waitUntil(precache().then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

const isPage = (resp) => resp.ok && (resp.headers.get("content-type") || "").startsWith("text/html");

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/assets/")) {
    event.respondWith(
      caches.match(req).then(
        (hit) =>
          hit ||
          fetch(req).then((resp) => {
            if (resp.ok && !isPage(resp)) {
              const copy = resp.clone();
              caches.open(CACHE).then((c) => c.put(req, copy));
            }
            return resp;
          }),
      ),
    );
  } else if (req.mode === "navigate") {
    event.respondWith(
      fetch(req)
        .then((resp) => {
          // Only the app's page is kept as the page: never an API answer or a stored file
          // that a tab happened to open.
          if (isPage(resp)) {
            const copy = resp.clone();
            caches.open(CACHE).then((c) => c.put("/", copy));
          }
          return resp;
        })
        .catch(() => caches.match("/").then((hit) => hit || Response.error())),
    );
  } else if (SHELL.includes(url.pathname)) {
    event.respondWith(fetch(req).catch(() => caches.match(req).then((hit) => hit || Response.error())));
  }
});
