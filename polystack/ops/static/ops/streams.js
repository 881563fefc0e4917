// The streams page refreshes itself: every few seconds it reads itself again and swaps in the
// new tables. When Kafka (or the server) does not answer, the last numbers stay, marked stale.
"use strict";
(() => {
  const root = document.getElementById("streams");
  const every = Number(root.dataset.refreshS) * 1000;
  async function refresh() {
    try {
      const answer = await fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
      const page = new DOMParser().parseFromString(await answer.text(), "text/html");
      const fresh = page.getElementById("streams");
      if (!answer.ok || !fresh) throw new Error(fresh ? fresh.querySelector("#freshness").textContent : `${answer.status}`);
      root.replaceChildren(...fresh.childNodes);
    } catch (error) {
      document.getElementById("freshness").textContent = `Stale since ${new Date().toLocaleTimeString()}: ${error.message}`;
    }
  }
  setInterval(refresh, every);
})();
