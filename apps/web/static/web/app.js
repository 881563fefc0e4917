// PolyStack web page: the todo list follows the event stream.
//
// The page starts from what the server rendered (the projection, and its Kafka position),
// then applies each event frame from /ws/todos/ in aggregateVersion order per todo — a small
// client-side projection. A version gap (live pushes may be dropped) is filled by
// asking the socket for the missing versions; a reconnect resumes from the last position
// seen. Commands go to the REST API with the session cookie and CSRF token.
"use strict";

const boot = JSON.parse(document.getElementById("bootstrap").textContent);
const me = boot.me.id;
const todos = new Map(boot.todos.map((t) => [t.id, t]));
const versions = new Map(boot.todos.map((t) => [t.id, t.version]));
const pending = new Map(); // todoId -> Map(version -> envelope) waiting for earlier versions
const askedFor = new Map(); // todoId -> time of the last catch-up request
const positions = { ...boot.positions }; // partition -> last offset seen
let teams = boot.teams;
let invitations = boot.invitations;
const people = boot.people;
let notifications = boot.notifications;
let unread = boot.unreadCount;

const $ = (selector) => document.querySelector(selector);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
};

// --- REST ----------------------------------------------------------------------------------
function csrf() {
  const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function api(method, url, body) {
  const response = await fetch(url, {
    method, credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf(), Accept: "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const detail = data && (data.detail || Object.entries(data).map(([k, v]) => `${k}: ${[].concat(v).join(" ")}`).join("; "));
    throw new Error(detail || `${response.status} ${response.statusText}`);
  }
  return data;
}

function say(text, kind = "error") {
  const box = $("#message");
  box.textContent = text;
  box.dataset.kind = kind;
  box.hidden = !text;
}

async function run(action) {
  try {
    say("");
    return await action();
  } catch (error) {
    say(error.message);
  }
}

// --- the client-side projection -------------------------------------------------------------
function maySee(todo) {
  return todo.userId === me || todo.assignedTo === me || teams.some((team) => team.id === todo.teamId);
}

function upsert(todo) {
  if ((versions.get(todo.id) || 0) > todo.version) return;
  versions.set(todo.id, todo.version);
  if (maySee(todo)) todos.set(todo.id, todo); else todos.delete(todo.id);
  render();
}

function apply(envelope) {
  const d = envelope.data;
  const id = envelope.aggregateId;
  versions.set(id, envelope.aggregateVersion);
  if (envelope.eventType === "TodoCreated") {
    todos.set(id, { id, title: d.title, description: d.description, priority: d.priority, completed: false,
      completedAt: null, assignedTo: null, userId: d.userId, dueDate: d.dueDate, reminderTimes: [], teamId: d.teamId,
      createdAt: d.createdAt, updatedAt: d.createdAt, version: envelope.aggregateVersion });
    return;
  }
  const todo = todos.get(id);
  if (!todo) return;
  todo.version = envelope.aggregateVersion;
  switch (envelope.eventType) {
    case "TodoUpdated": Object.assign(todo, { title: d.title, description: d.description, updatedAt: d.updatedAt }); break;
    case "TodoCompleted": Object.assign(todo, { completed: true, completedAt: d.completedAt }); break;
    case "TodoAssigned": todo.assignedTo = d.assignedTo; break;
    case "TodoPrioritized": todo.priority = d.priority; break;
    case "TodoScheduled": Object.assign(todo, { dueDate: d.dueDate, reminderTimes: d.reminderTimes }); break;
    case "TodoConflictDetected": case "TodoConflictResolved": loadConflicts(); break;
    case "TodoDeleted": todos.delete(id); return;
  }
  if (!maySee(todo)) todos.delete(id);
}

function onEvent(envelope) {
  const id = envelope.aggregateId;
  if (envelope.aggregateVersion <= (versions.get(id) || 0)) return; // seen already
  if (!pending.has(id)) pending.set(id, new Map());
  pending.get(id).set(envelope.aggregateVersion, envelope);
  drain(id);
}

function drain(id) {
  const waiting = pending.get(id);
  let known = versions.get(id) || 0;
  if (known === 0 && !waiting.has(1)) return fetchTodo(id); // newly visible: read its current state
  while (waiting.has(known + 1)) {
    apply(waiting.get(known + 1));
    waiting.delete(known + 1);
    known += 1;
  }
  for (const version of waiting.keys()) if (version <= known) waiting.delete(version);
  if (waiting.size) requestCatchup(id, known, Math.min(...waiting.keys()));
  else pending.delete(id);
  render();
}

function requestCatchup(id, after, before) {
  const last = askedFor.get(id) || 0;
  if (Date.now() - last < 2000) return setTimeout(() => pending.has(id) && drain(id), 2000);
  askedFor.set(id, Date.now());
  send({ type: "catchup", todoId: id, afterVersion: after, beforeVersion: before });
  // The answer may not fill the gap (the projection was slow to apply it, the frame was lost):
  // look again, and ask again, until it is filled.
  setTimeout(() => pending.has(id) && drain(id), 2500);
}

async function fetchTodo(id, attempt = 0) {
  const response = await fetch(`/api/todos/${id}/`, { credentials: "same-origin", headers: { Accept: "application/json" } });
  const wanted = Math.max(...(pending.get(id) || new Map()).keys(), 0);
  if (response.ok) {
    const todo = await response.json();
    if (todo.version >= wanted || attempt >= 10) {
      upsert(todo);
      if (pending.has(id)) drain(id);
      return;
    }
  } else if (response.status !== 404 || attempt >= 10) {
    pending.delete(id);
    return;
  }
  setTimeout(() => fetchTodo(id, attempt + 1), 300); // the projection is a moment behind the push
}

async function reloadAll() {
  const page = await api("GET", "/api/todos/?page_size=1000");
  todos.clear();
  for (const todo of page.results) { todos.set(todo.id, todo); versions.set(todo.id, todo.version); }
  render();
}

// --- the socket -----------------------------------------------------------------------------
let socket = null;
let retryDelay = 1000;

function setConnection(state, text) {
  const pill = $("#connection");
  pill.dataset.state = state;
  pill.textContent = text;
}

function send(frame) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
}

function connect() {
  const after = Object.entries(positions).map(([p, o]) => `${p}:${o}`).join(",");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/todos/?after=${encodeURIComponent(after) || "0:-1"}`);
  setConnection("connecting", "Connecting…");
  socket.onmessage = (message) => {
    const frame = JSON.parse(message.data);
    if (frame.type === "event") {
      const { partition, offset } = frame.position;
      positions[partition] = Math.max(positions[partition] ?? -1, offset);
      onEvent(frame.event);
    } else if (frame.type === "ready") {
      retryDelay = 1000;
      setConnection("live", "Live");
      if (!frame.complete) reloadAll();
    } else if (frame.type === "notification") {
      onNotification(frame.notification);
    } else if (frame.type === "reload") {
      location.reload(); // what this user may see changed (a team left): read it afresh
    } else if (frame.type === "error") {
      console.warn("socket:", frame.error);
    }
  };
  socket.onclose = (event) => {
    if (event.code === 4401) { setConnection("offline", "Signed out"); location.assign("/login/?next=/todos/"); return; }
    const seconds = Math.round(retryDelay / 1000);
    setConnection("offline", `Offline — reconnecting in ${seconds} s`);
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 15000);
  };
}

// --- rendering ------------------------------------------------------------------------------
const nameOf = (userId) => (people.find((p) => p.id === userId) || { username: `user ${userId}` }).username;
const teamOf = (teamId) => teams.find((t) => t.id === teamId);

function visibleTodos() {
  const view = $("#view").value;
  const showDone = $("#show-done").checked;
  return [...todos.values()]
    .filter((t) => showDone || !t.completed)
    .filter((t) => view === "all" || (view === "mine" && t.userId === me) || (view === "assigned" && t.assignedTo === me)
      || (view === "personal" && !t.teamId) || (view.startsWith("team:") && t.teamId === view.slice(5)))
    .sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
}

function select(label, options, value, onChange, disabled) {
  const id = `s${Math.random().toString(36).slice(2)}`;
  const node = el("select", { id, disabled });
  for (const [v, text] of options) node.append(el("option", { value: v, textContent: text, selected: v === value }));
  node.addEventListener("change", () => onChange(node.value));
  return [el("label", { htmlFor: id, className: "sr-only", textContent: label }), node];
}

function todoItem(todo) {
  const owner = todo.userId === me;
  const mayComplete = owner || todo.assignedTo === me;
  const team = teamOf(todo.teamId);
  const checkId = `done-${todo.id}`;
  const check = el("input", { type: "checkbox", id: checkId, checked: todo.completed, disabled: todo.completed || !mayComplete });
  check.addEventListener("change", () => run(async () => upsert(await api("POST", `/api/todos/${todo.id}/complete/`, {}))));
  const assignees = team ? [[todo.userId, nameOf(todo.userId)], ...team.members.filter((m) => m.id !== todo.userId).map((m) => [m.id, m.username])]
    : people.map((p) => [p.id, p.username]);
  const [priorityLabel, priority] = select(`Priority of ${todo.title}`, [["low", "Low"], ["medium", "Medium"], ["high", "High"], ["urgent", "Urgent"]],
    todo.priority, (value) => run(async () => upsert(await api("POST", `/api/todos/${todo.id}/prioritize/`, { priority: value }))), !owner);
  const [assignLabel, assign] = select(`Assignee of ${todo.title}`, [["", "Unassigned"], ...assignees], todo.assignedTo || "",
    (value) => value && run(async () => upsert(await api("POST", `/api/todos/${todo.id}/assign/`, { assignedTo: value }))), !owner);
  const dueId = `due-${todo.id}`;
  const due = el("input", { type: "datetime-local", id: dueId, value: localInput(todo.dueDate), disabled: !owner || todo.completed });
  due.addEventListener("change", () => run(async () => upsert(await api("POST", `/api/todos/${todo.id}/schedule/`,
    { dueDate: due.value ? new Date(due.value).toISOString() : null }))));
  const dueLabel = el("label", { htmlFor: dueId, className: "sr-only", textContent: `Due date of ${todo.title}` });
  const edit = el("button", { type: "button", textContent: "Edit", disabled: !owner, ariaLabel: `Edit ${todo.title}` });
  edit.addEventListener("click", () => openEditor(todo));
  const remove = el("button", { type: "button", className: "danger", textContent: "Delete", disabled: !owner, ariaLabel: `Delete ${todo.title}` });
  remove.addEventListener("click", () => confirm(`Delete “${todo.title}”?`) && run(async () => {
    await api("DELETE", `/api/todos/${todo.id}/`, {});
    todos.delete(todo.id);
    render();
  }));
  const meta = el("p", { className: "meta" },
    el("span", { className: `prio prio-${todo.priority}`, textContent: todo.priority }),
    owner ? "" : ` by ${nameOf(todo.userId)}`,
    todo.assignedTo ? ` · assigned to ${todo.assignedTo === me ? "you" : nameOf(todo.assignedTo)}` : "",
    team ? ` · ${team.name}` : "",
    todo.dueDate ? el("span", { className: overdue(todo) ? "due overdue" : "due", textContent: ` · due ${when(todo.dueDate)}` }) : "",
    (todo.reminderTimes || []).length ? el("span", { className: "reminders",
      title: `Reminders: ${todo.reminderTimes.map(when).join(", ")}`,
      textContent: ` · ${todo.reminderTimes.length} reminder${todo.reminderTimes.length === 1 ? "" : "s"}` }) : "");
  return el("li", { id: `todo-${todo.id}`, className: `todo${todo.completed ? " done" : ""}` },
    check,
    el("div", { className: "text" },
      el("label", { htmlFor: checkId, className: "title", textContent: todo.title }),
      todo.description ? el("p", { className: "description", textContent: todo.description }) : "",
      meta),
    el("div", { className: "controls" }, priorityLabel, priority, assignLabel, assign, dueLabel, due, edit, remove));
}

// A moment as a datetime-local input holds it (local time, to the minute), and as people read it.
function localInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function when(iso) {
  return new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

function overdue(todo) {
  return !todo.completed && todo.dueDate && new Date(todo.dueDate) < new Date();
}

function render() {
  const list = $("#todo-list");
  const items = visibleTodos();
  list.replaceChildren(...items.map(todoItem));
  $("#empty").hidden = items.length > 0;
}

function renderTeams() {
  const options = [["all", "All I can see"], ["mine", "Mine"], ["assigned", "Assigned to me"], ["personal", "Personal"],
    ...teams.map((t) => [`team:${t.id}`, `Team: ${t.name}`])];
  const view = $("#view");
  const current = view.value;
  view.replaceChildren(...options.map(([v, text]) => el("option", { value: v, textContent: text, selected: v === current })));
  $("#new-team").replaceChildren(el("option", { value: "", textContent: "Personal" }),
    ...teams.map((t) => el("option", { value: t.id, textContent: t.name })));
  $("#team-list").replaceChildren(...teams.map((team) => {
    const item = el("li", {}, el("strong", { textContent: team.name }), " — ",
      team.members.map((m) => m.username).join(", "));
    if (team.ownerId === me) {
      const form = el("form", { className: "row" });
      const id = `member-${team.id}`;
      const input = el("input", { id, name: "username", placeholder: "username", required: true });
      form.append(el("label", { htmlFor: id, className: "sr-only", textContent: `Invite someone to ${team.name}` }), input,
        el("button", { type: "submit", textContent: "Invite" }));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        run(async () => {
          const answer = await api("POST", `/api/teams/${team.id}/members/`, { username: input.value.trim() });
          form.reset();
          say(answer.detail, "info");
        });
      });
      item.append(form);
    } else {
      item.append(" ", button(`Leave ${team.name}`, "Leave", () => run(async () => {
        await api("POST", `/api/teams/${team.id}/leave/`);
        location.reload(); // what this user may see changed: read it afresh
      })));
    }
    return item;
  }));
  $("#invitation-list").replaceChildren(...invitations.map((invitation) => el("li", {},
    `${invitation.invitedBy} invites you to `, el("strong", { textContent: invitation.teamName }), " ",
    button(`Accept the invitation to ${invitation.teamName}`, "Accept", () => run(async () => {
      await api("POST", `/api/invitations/${invitation.id}/accept/`);
      location.reload(); // the team's todos and people come with the page
    })),
    " ",
    button(`Decline the invitation to ${invitation.teamName}`, "Decline", () => run(async () => {
      await api("POST", `/api/invitations/${invitation.id}/decline/`);
      invitations = invitations.filter((i) => i.id !== invitation.id);
      renderTeams();
    })))));
  $("#invitations").hidden = invitations.length === 0;
}

// --- devices (Phase 5): the user's sync clients, online or not, and how far each synced -----
const DEVICES_EVERY_MS = 10_000;

async function loadDevices() {
  try {
    renderDevices(await api("GET", "/api/devices/"));
  } catch (error) {
    // shown again at the next refresh; the rest of the page does not depend on it
  }
}

function renderDevices(devices) {
  $("#device-list").replaceChildren(...devices.map((device) => {
    const behind = device.streamOffset >= 0 && device.syncedOffset < device.streamOffset;
    const state = device.online ? "online" : (device.lastSeenAt ? `last seen ${when(device.lastSeenAt)}` : "never connected");
    const item = el("li", { className: "device" },
      el("strong", { textContent: device.name }), ` (${device.platform}) — ${state}, `,
      behind ? `behind: synced to ${device.syncedOffset} of ${device.streamOffset}` : "up to date", " ",
      button(`Remove ${device.name}`, "Remove", () => run(async () => {
        await api("DELETE", `/api/devices/${device.deviceId}/`);
        await loadDevices();
      })));
    return item;
  }));
  $("#devices-empty").hidden = devices.length > 0;
}

// --- sync conflicts (Phase 5): two devices changed one field, and the owner asked to choose ---
async function loadConflicts() {
  try {
    renderConflicts(await api("GET", "/api/conflicts/"));
  } catch (error) {
    // shown again at the next refresh
  }
}

function renderConflicts(conflicts) {
  const titled = (c) => (todos.get(c.todoId) || { title: "a todo" }).title;
  $("#conflict-list").replaceChildren(...conflicts.map((c) => {
    const resolve = (value) => run(async () => {
      await api("POST", `/api/conflicts/${c.conflictId}/resolve/`, { value });
      say(`“${titled(c)}”: ${c.field} is now “${value}”.`, "info");
      await loadConflicts();
    });
    const inputId = `resolve-${c.conflictId}`;
    const own = el("input", { id: inputId, value: c.localValue ?? "", maxLength: c.field === "title" ? 200 : 5000 });
    const form = el("form", { className: "row" },
      el("label", { htmlFor: inputId, className: "sr-only", textContent: `Another ${c.field} for ${titled(c)}` }), own,
      el("button", { type: "submit", textContent: "Use this" }));
    form.addEventListener("submit", (event) => { event.preventDefault(); resolve(own.value); });
    return el("li", { className: "conflict" },
      el("strong", { textContent: titled(c) }), ` — ${c.field}: `,
      button(`Keep “${c.remoteValue}” as the ${c.field} of ${titled(c)}`, `Keep “${c.remoteValue}”`, () => resolve(c.remoteValue)),
      " ",
      button(`Use “${c.localValue}” as the ${c.field} of ${titled(c)}`, `Use “${c.localValue}”`, () => resolve(c.localValue)),
      c.field === "completed" ? "" : form);
  }));
  $("#conflicts-empty").hidden = conflicts.length > 0;
}

async function loadPolicy() {
  try {
    $("#conflict-policy").value = (await api("GET", "/api/sync/settings/")).conflictPolicy;
  } catch (error) {
    // the select keeps its default until the next load
  }
}

$("#conflict-policy").addEventListener("change", (event) => run(async () => {
  await api("PUT", "/api/sync/settings/", { conflictPolicy: event.target.value });
  say("Conflict setting saved.", "info");
}));

function button(label, text, onClick) {
  const b = el("button", { type: "button", textContent: text });
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

// --- notifications --------------------------------------------------------------------------
function renderFeed() {
  $("#unread").textContent = String(unread);
  $("#unread").dataset.count = String(unread);
  $("#feed-empty").hidden = notifications.length > 0;
  $("#feed-list").replaceChildren(...notifications.map((n) => {
    const item = el("li", { className: n.readAt ? "read" : "unread" },
      el("a", { href: `#todo-${n.todoId}`, textContent: n.subject }),
      el("time", { dateTime: n.createdAt, textContent: new Date(n.createdAt).toLocaleString() }));
    if (!n.readAt) {
      const mark = el("button", { type: "button", className: "ghost small", textContent: "Mark read", ariaLabel: `Mark “${n.subject}” read` });
      mark.addEventListener("click", () => run(async () => {
        const updated = await api("POST", `/api/notifications/${n.id}/read/`);
        unread = updated.unreadCount;
        notifications = notifications.map((x) => (x.id === n.id ? { ...x, readAt: updated.readAt } : x));
        renderFeed();
      }));
      item.append(mark);
    }
    if (n.category === "reminder") {  // the in-app reminder's snooze action
      const snooze = el("button", { type: "button", className: "ghost small", textContent: "Snooze 1 h", ariaLabel: `Snooze “${n.subject}” for an hour` });
      snooze.addEventListener("click", () => run(async () => {
        const done = await api("POST", `/api/todos/${n.todoId}/reminders/snooze/`, { minutes: 60 });
        say(`You will be reminded again at ${when(done.snoozeUntil)}.`, "info");
      }));
      item.append(snooze);
    }
    return item;
  }));
}

function onNotification(notification) {
  if (notifications.some((n) => n.id === notification.id)) return;
  notifications = [notification, ...notifications].slice(0, 50);
  if (!notification.readAt) unread += 1;
  renderFeed();
}

function renderPreferences() {
  const form = $("#preferences");
  const categories = [...new Set(boot.preferences.map((p) => p.category))];
  const table = el("table", {}, el("thead", {}, el("tr", {}, el("th", { textContent: "Tell me when" }),
    el("th", { textContent: "Email" }), el("th", { textContent: "In-app" }))));
  const body = el("tbody");
  for (const category of categories) {
    const row = el("tr", {}, el("th", { scope: "row", textContent: boot.preferences.find((p) => p.category === category).label }));
    for (const channel of ["email", "in_app"]) {
      const pref = boot.preferences.find((p) => p.category === category && p.channel === channel);
      const box = el("input", { type: "checkbox", checked: pref.enabled, ariaLabel: `${pref.label} by ${channel === "email" ? "email" : "in-app notification"}` });
      box.addEventListener("change", () => run(async () => {
        const saved = await api("PUT", "/api/notifications/preferences/", { preferences: [{ category, channel, enabled: box.checked }] });
        boot.preferences = saved.preferences;
        say("Settings saved.", "info");
      }));
      row.append(el("td", {}, box));
    }
    body.append(row);
  }
  table.append(body);
  form.replaceChildren(table);
}

// --- forms ----------------------------------------------------------------------------------
let editing = null;
function openEditor(todo) {
  editing = todo;
  $("#edit-title-input").value = todo.title;
  $("#edit-description").value = todo.description;
  $("#edit").showModal();
}

$("#edit").addEventListener("close", () => {
  if ($("#edit").returnValue !== "save" || !editing) return;
  const todo = editing;
  run(async () => upsert(await api("PATCH", `/api/todos/${todo.id}/`, {
    title: $("#edit-title-input").value.trim(), description: $("#edit-description").value, expectedVersion: todo.version })));
});

$("#create").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  const title = form.title.value.trim();
  if (!title) { say("title: give the todo a title."); form.title.focus(); return; }
  run(async () => {
    const body = { title, description: form.description.value, priority: form.priority.value };
    if (form.teamId.value) body.teamId = form.teamId.value;
    if (form.dueDate.value) body.dueDate = new Date(form.dueDate.value).toISOString();
    const todo = await api("POST", "/api/todos/", body);
    if (todo.title !== undefined) upsert(todo);
    form.reset();
    form.title.focus();
  });
});

$("#team-create").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = event.target.name.value.trim();
  if (!name) return;
  run(async () => {
    const team = await api("POST", "/api/teams/", { name });
    teams = [...teams, team];
    event.target.reset();
    renderTeams();
  });
});

$("#feed-toggle").addEventListener("click", () => {
  const feed = $("#feed");
  const open = feed.classList.toggle("open");
  $("#feed-toggle").setAttribute("aria-expanded", String(open));
  if (open) feed.scrollIntoView({ behavior: "smooth", block: "start" });
});
$("#view").addEventListener("change", render);
$("#show-done").addEventListener("change", render);

renderTeams();
render();
renderFeed();
renderPreferences();
connect();
loadDevices();
loadConflicts();
loadPolicy();
setInterval(() => { loadDevices(); loadConflicts(); }, DEVICES_EVERY_MS);
