// PolyStack web page: the sync client (Phase 5). The page is one of the user's devices.
//
// Its copy of the todos, its position in the user's stream, its queue of changes not yet
// confirmed and its hybrid logical clock live in IndexedDB, so the page opens and works offline:
// a change is queued and shown at once, and pushed when the socket is up. The protocol is
// /ws/sync/'s (apps/sync/sockets.py documents every frame; apps/sync/client/queue.py is the
// same logic in Python, used by the terminal client):
//
//   hello {deviceId, lastOffset} → snapshot | records after it → ready {lastMutationId}
//   push {mutations} → pushed {results, lastMutationId}; records come back for what applied
//
// What the user sees is always recomputed: the copy, with the pending changes on top.
"use strict";

const SYNC_MAX_PUSH = 100;
const SYNC_MAX_SKEW_MS = 60_000;

// A random (version 4) UUID: crypto.randomUUID exists only in secure contexts (https, localhost).
function uuid4() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

class SyncClient {
  constructor({ userId, onChange, onStatus, onResults, onFrame, onRecord }) {
    Object.assign(this, { userId, onChange, onStatus, onResults, onFrame, onRecord });
    this.todos = new Map(); // the copy: todoId -> todo, as the server last sent it
    this.offset = -1;
    this.pending = []; // mutations not confirmed yet, in id order
    this.lastId = 0;
    this.clock = { wall: 0, counter: 0 };
    this.deviceId = null;
    this.socket = null;
    this.ready = false;
    this.retryDelay = 1000;
    this.pushing = false;
  }

  // --- storage ---------------------------------------------------------------------------
  async open() {
    this.db = await new Promise((resolve, reject) => {
      const request = indexedDB.open(`polystack-sync-${this.userId}`, 1);
      request.onupgradeneeded = () => {
        const db = request.result;
        db.createObjectStore("meta");
        db.createObjectStore("todos", { keyPath: "id" });
        db.createObjectStore("pending", { keyPath: "id" });
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    const [meta, todos, pending] = await Promise.all([this.all("meta", true), this.all("todos"), this.all("pending")]);
    this.deviceId = meta.deviceId || null;
    this.offset = meta.offset ?? -1;
    this.lastId = meta.lastId || 0;
    this.clock = meta.clock || this.clock;
    this.todos = new Map(todos.map((t) => [t.id, t]));
    this.pending = pending.sort((a, b) => a.id - b.id);
  }

  all(store, keyed = false) {
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction(store);
      const request = keyed ? tx.objectStore(store).openCursor() : tx.objectStore(store).getAll();
      const found = {};
      request.onsuccess = () => {
        if (!keyed) return resolve(request.result);
        const cursor = request.result;
        if (!cursor) return resolve(found);
        found[cursor.key] = cursor.value;
        cursor.continue();
      };
      request.onerror = () => reject(request.error);
    });
  }

  // One IndexedDB transaction: `work(stores)` puts and deletes; the meta always goes with it.
  // The last mutation id only grows (another tab of this browser, the same device, may have
  // taken a higher one).
  write(work) {
    const tx = this.db.transaction(["meta", "todos", "pending"], "readwrite");
    const stores = { todos: tx.objectStore("todos"), pending: tx.objectStore("pending") };
    work(stores);
    const meta = tx.objectStore("meta");
    meta.put(this.deviceId, "deviceId");
    meta.put(this.offset, "offset");
    meta.put(this.clock, "clock");
    const last = meta.get("lastId");
    last.onsuccess = () => { if ((last.result || 0) < this.lastId) meta.put(this.lastId, "lastId"); };
    return new Promise((resolve) => { tx.oncomplete = resolve; tx.onerror = resolve; });
  }

  // A change, numbered in one IndexedDB transaction with its storing: two tabs of one browser
  // are one device, and must never number two changes alike (the server would take the second
  // for a duplicate of the first).
  enqueue(make) {
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction(["meta", "pending"], "readwrite");
      const meta = tx.objectStore("meta");
      const last = meta.get("lastId");
      let mutation;
      last.onsuccess = () => {
        mutation = make(Math.max(last.result || 0, this.lastId) + 1);
        meta.put(mutation.id, "lastId");
        tx.objectStore("pending").put(mutation);
      };
      tx.oncomplete = () => resolve(mutation);
      tx.onerror = () => reject(tx.error);
    });
  }

  async forget() {
    this.todos.clear();
    this.offset = -1;
    await this.write((s) => { s.todos.clear(); });
  }

  // --- the device ------------------------------------------------------------------------
  async register() {
    const response = await fetch("/api/devices/", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf(), Accept: "application/json" },
      body: JSON.stringify({ name: `web: ${navigator.userAgent.match(/(Firefox|Edg|Chrome|Safari)/)?.[0] || "browser"}`, platform: "web" }),
    });
    if (!response.ok) throw new Error(`this page could not register as a device (${response.status})`);
    this.deviceId = (await response.json()).deviceId;
    await this.write(() => {});
  }

  // --- changes ---------------------------------------------------------------------------
  tick() {
    const now = Date.now();
    if (now > this.clock.wall) this.clock = { wall: now, counter: 0 };
    else this.clock = { wall: this.clock.wall, counter: this.clock.counter + 1 };
    return `${this.clock.wall}:${this.clock.counter}`;
  }

  observe(hlc) {
    const [wall, counter] = hlc.split(":").map(Number);
    if (wall > Date.now() + SYNC_MAX_SKEW_MS) return; // a forged record must not push our clock out of range
    if (wall > this.clock.wall || (wall === this.clock.wall && counter > this.clock.counter)) this.clock = { wall, counter };
  }

  // Queue a change made now, show it, push it when connected. Returns the todo's id.
  async change(name, todoId, args = {}) {
    todoId = todoId || uuid4();
    const held = this.todos.get(todoId);
    const hlc = this.tick();
    const mutation = await this.enqueue((id) => ({ id, name, todoId, baseVersion: held ? held.version : 0, hlc, args }));
    this.lastId = Math.max(this.lastId, mutation.id);
    this.pending.push(mutation);
    this.onChange();
    this.status();
    this.push();
    return todoId;
  }

  async confirmed(lastMutationId) {
    const done = this.pending.filter((m) => m.id <= lastMutationId);
    this.pending = this.pending.filter((m) => m.id > lastMutationId);
    this.lastId = Math.max(this.lastId, lastMutationId);
    await this.write((s) => done.forEach((m) => s.pending.delete(m.id)));
  }

  // Push the queue as IndexedDB holds it: with the changes other tabs of this browser made.
  async push() {
    if (!this.ready || this.pushing) return;
    this.pushing = true;
    this.pending = (await this.all("pending")).sort((a, b) => a.id - b.id);
    if (!this.pending.length || !this.ready) { this.pushing = false; return; }
    this.socket.send(JSON.stringify({ type: "push", mutations: this.pending.slice(0, SYNC_MAX_PUSH) }));
  }

  // The todos as the user sees them: the copy, and the pending changes on top.
  view() {
    const todos = new Map([...this.todos].map(([id, todo]) => [id, { ...todo }]));
    for (const m of this.pending) {
      const todo = todos.get(m.todoId);
      if (m.name === "create" && !todo && !this.todos.has(m.todoId)) {
        todos.set(m.todoId, { id: m.todoId, title: m.args.title, description: m.args.description || "",
          priority: m.args.priority || "medium", completed: false, completedAt: null, assignedTo: null,
          userId: this.userId, dueDate: null, reminderTimes: [], teamId: m.args.teamId || null,
          createdAt: new Date(Number(m.hlc.split(":")[0])).toISOString(), version: 0, conflicts: [], pending: true });
      } else if (todo && m.name === "update") {
        todos.set(m.todoId, { ...todo, ...m.args, pending: true });
      } else if (todo && m.name === "complete") {
        todos.set(m.todoId, { ...todo, completed: true, pending: true });
      } else if (m.name === "delete") {
        todos.delete(m.todoId);
      }
    }
    return todos;
  }

  // --- the socket ------------------------------------------------------------------------
  status() {
    const waiting = this.pending.length;
    const tail = waiting ? ` · ${waiting} change${waiting === 1 ? "" : "s"} waiting` : "";
    if (this.ready) this.onStatus("live", `Live${tail}`);
    else if (!navigator.onLine) this.onStatus("offline", `Offline${tail || " · changes wait here"}`);
    else this.onStatus("connecting", `Connecting…${tail}`);
  }

  connect() {
    if (this.socket || !navigator.onLine) return this.status();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/sync/`);
    this.socket = socket;
    this.status();
    socket.onopen = () => socket.send(JSON.stringify({ type: "hello", deviceId: this.deviceId, lastOffset: this.offset }));
    socket.onmessage = (message) => this.receive(JSON.parse(message.data));
    socket.onclose = (event) => this.closed(socket, event.code);
  }

  disconnect() { // the network went away: the socket does not always notice
    if (this.socket) this.socket.close();
  }

  async closed(socket, code) {
    if (this.socket !== socket) return;
    this.socket = null;
    this.ready = false;
    this.pushing = false;
    if (code === 4401) { location.assign("/login/?next=/todos/"); return; }
    if (code === 4404) { // this device was removed: start again as a new one
      await this.forget();
      await this.register();
      this.retryDelay = 0;
    }
    this.status();
    if (!navigator.onLine) return; // the "online" event reconnects
    setTimeout(() => this.connect(), this.retryDelay);
    this.retryDelay = Math.min(Math.max(this.retryDelay * 2, 1000), 15000);
  }

  async receive(frame) {
    switch (frame.type) {
      case "snapshot":
      case "snapshot.part": {
        if (frame.type === "snapshot") this.todos.clear();
        for (const todo of frame.todos) this.todos.set(todo.id, todo);
        this.offset = frame.offset;
        const todos = frame.todos;
        await this.write((s) => { if (frame.type === "snapshot") s.todos.clear(); todos.forEach((t) => s.todos.put(t)); });
        break;
      }
      case "record": {
        const { todo, visible, event } = frame.record;
        const held = this.todos.get(event.aggregateId);
        let gone = false;
        if (!held || held.version < event.aggregateVersion) {
          if (visible && todo) this.todos.set(todo.id, todo); else { this.todos.delete(event.aggregateId); gone = true; }
        }
        const origin = event.metadata && event.metadata.origin;
        if (origin) this.observe(origin.hlc);
        this.offset = frame.offset;
        const kept = this.todos.get(event.aggregateId);
        await this.write((s) => (gone ? s.todos.delete(event.aggregateId) : kept && s.todos.put(kept)));
        this.onRecord(event);
        break;
      }
      case "ready":
        this.ready = true;
        this.retryDelay = 1000;
        await this.confirmed(frame.lastMutationId);
        if (this.socket) this.socket.send(JSON.stringify({ type: "ack", offset: this.offset }));
        this.push();
        break;
      case "pushed":
        this.pushing = false;
        await this.confirmed(frame.lastMutationId);
        this.onResults(frame.results, frame.gap ? null : frame.refused); // a gap heals itself
        // Refused (a gap: another tab's change not stored yet; or the server busy): a moment later.
        // Too many changes at once: when the server says.
        if (frame.refused) setTimeout(() => this.push(), (frame.retryAfter || 1) * 1000); else this.push();
        break;
      default:
        this.onFrame(frame);
        return;
    }
    if (frame.type === "record" && this.ready && this.socket) this.socket.send(JSON.stringify({ type: "ack", offset: this.offset }));
    this.status();
    this.onChange();
  }

  async start() {
    await this.open();
    if (!this.deviceId) await this.register();
    this.onChange();
    window.addEventListener("offline", () => { this.disconnect(); this.status(); });
    window.addEventListener("online", () => this.connect());
    this.connect();
  }
}
