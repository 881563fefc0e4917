// PolyStack's service worker: the todo page opens with no network, from what it was last online.
//
// Served at /sw.js (scope: the whole site) by apps.web.pages.service_worker, which prepends
// `const SHELL = {page, assets, version}`. The todos themselves are not here: the page keeps
// them in IndexedDB (sync.js); this worker keeps only the page and its scripts and styles.
//
// - The page (/todos/) and its assets: network first, so an online user always gets the
//   current ones; each answer that is the signed-in page (200, not a redirect to the login) is
//   kept. When the network fails (no connection, the server down) the kept copy is served; a
//   slow network is waited for, as without this worker (a copy served early would be older).
// - Signing out (POST /logout/, /admin/logout/), or the server sending the page to the login,
//   drops the kept page: nobody opens a signed-out user's todos from this browser.
// - Anything else (the API, sockets, the admin) is not touched.
"use strict";

const PAGES = "polystack-page"; // the signed-in page, as last read online
const ASSETS = `polystack-assets-${SHELL.version}`;
const SIGN_OUT = new Set(["/logout/", "/admin/logout/"]);

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(ASSETS);
    await cache.addAll(SHELL.assets);
    try {
      await keepPage(await fetch(SHELL.page, { redirect: "manual", credentials: "same-origin" }));
    } catch (error) {
      // kept at the next visit online
    }
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith("polystack-assets-") && name !== ASSETS) await caches.delete(name);
    }
    await self.clients.claim(); // the page that registered this worker works offline from now on
  })());
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.method === "POST" && SIGN_OUT.has(url.pathname)) {
    event.waitUntil(caches.delete(PAGES));
    return;
  }
  if (request.method !== "GET") return;
  if (request.mode === "navigate" && url.pathname === SHELL.page) {
    event.respondWith(networkFirst(request, PAGES, SHELL.page, keepPage));
  } else if (SHELL.assets.includes(url.pathname)) {
    event.respondWith(networkFirst(request, ASSETS, url.pathname, keepAsset));
  }
});

async function networkFirst(request, cacheName, key, keep) {
  let answer;
  try {
    answer = await fetch(request);
  } catch (error) {
    const kept = await (await caches.open(cacheName)).match(key);
    if (kept) return kept;
    throw error; // never online here before: the browser shows its own offline page
  }
  await keep(answer.clone());
  return answer;
}

async function keepPage(response) {
  if (response.type === "opaqueredirect" || response.status === 302) {
    await caches.delete(PAGES); // signed out (the server sends the page to the login)
  } else if (response.status === 200 && !response.redirected) {
    await (await caches.open(PAGES)).put(SHELL.page, response);
  }
}

async function keepAsset(response) {
  if (response.status === 200) await (await caches.open(ASSETS)).put(new URL(response.url).pathname, response);
}
