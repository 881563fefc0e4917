// PolyStack web page: the todo list is a sync client (sync.js): one of the user's devices,
// with its copy of the todos in IndexedDB, working offline, following /ws/sync/. Changes to
// todos are mutations queued and pushed by it; what has no mutation (a due date, a snooze,
// teams, notifications) goes to the REST API with the session cookie and CSRF token, online.
"use strict";

const boot = JSON.parse(document.getElementById("bootstrap").textContent);
const me = boot.me.id;
let todos = new Map(boot.todos.map((t) => [t.id, t])); // what the server rendered, until the copy is read
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

// --- the sync client ----------------------------------------------------------------------
function setConnection(state, text) {
  const pill = $("#connection");
  pill.dataset.state = state;
  pill.textContent = text;
}

function onResults(results, refused) {
  const told = [];
  for (const r of results) {
    if (r.status === "rejected") told.push(`A change was refused: ${r.error}${r.errors ? ` (${JSON.stringify(r.errors)})` : ""}.`);
    for (const [field, kept] of Object.entries(r.lost || {})) {
      told.push(field === "deleted" ? "A change was not applied: the todo was deleted meanwhile."
        : `Your change of ${field} lost to a later one (kept “${kept}”).`);
    }
    if ((r.conflicts || []).length) told.push("Another device changed the same field: choose the value under Sync conflicts.");
  }
  if (refused) told.push(`The server refused the changes: ${refused}`);
  if (told.length) say(told.join(" "), results.some((r) => r.status === "rejected") || refused ? "error" : "info");
  if (results.some((r) => (r.conflicts || []).length)) loadConflicts();
}

function onFrame(frame) {
  if (frame.type === "notification") onNotification(frame.notification);
  else if (frame.type === "error") console.warn("socket:", frame.error);
}

const sync = new SyncClient({
  userId: me,
  onChange: () => {
    if (sync.offset < 0 && !sync.pending.length && !sync.todos.size) return; // nothing read yet: keep the server's render
    todos = sync.view();
    render();
  },
  onStatus: setConnection, onResults, onFrame,
  onRecord: (event) => event.eventType.startsWith("TodoConflict") && loadConflicts(),
});

function online(what) {
  if (navigator.onLine && sync.ready) return true;
  say(`${what} needs a connection: try again when the page is live.`);
  return false;
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
  check.addEventListener("change", () => run(() => sync.change("complete", todo.id)));
  const assignees = team ? [[todo.userId, nameOf(todo.userId)], ...team.members.filter((m) => m.id !== todo.userId).map((m) => [m.id, m.username])]
    : people.map((p) => [p.id, p.username]);
  const [priorityLabel, priority] = select(`Priority of ${todo.title}`, [["low", "Low"], ["medium", "Medium"], ["high", "High"], ["urgent", "Urgent"]],
    todo.priority, (value) => run(() => sync.change("update", todo.id, { priority: value })), !owner);
  const [assignLabel, assign] = select(`Assignee of ${todo.title}`, [["", "Unassigned"], ...assignees], todo.assignedTo || "",
    (value) => value && run(() => sync.change("update", todo.id, { assignedTo: value })), !owner);
  const dueId = `due-${todo.id}`;
  const due = el("input", { type: "datetime-local", id: dueId, value: localInput(todo.dueDate),
    disabled: !owner || todo.completed || todo.pending });
  due.addEventListener("change", () => online("A due date") && run(() => api("POST", `/api/todos/${todo.id}/schedule/`,
    { dueDate: due.value ? new Date(due.value).toISOString() : null })));
  const dueLabel = el("label", { htmlFor: dueId, className: "sr-only", textContent: `Due date of ${todo.title}` });
  const edit = el("button", { type: "button", textContent: "Edit", disabled: !owner, ariaLabel: `Edit ${todo.title}` });
  edit.addEventListener("click", () => openEditor(todo));
  const remove = el("button", { type: "button", className: "danger", textContent: "Delete", disabled: !owner, ariaLabel: `Delete ${todo.title}` });
  const history = historyButton(todo);
  remove.addEventListener("click", () => confirm(`Delete “${todo.title}”?`) && run(() => sync.change("delete", todo.id)));
  const meta = el("p", { className: "meta" },
    el("span", { className: `prio prio-${todo.priority}`, textContent: todo.priority }),
    owner ? "" : ` by ${nameOf(todo.userId)}`,
    todo.assignedTo ? ` · assigned to ${todo.assignedTo === me ? "you" : nameOf(todo.assignedTo)}` : "",
    team ? ` · ${team.name}` : "",
    todo.dueDate ? el("span", { className: overdue(todo) ? "due overdue" : "due", textContent: ` · due ${when(todo.dueDate)}` }) : "",
    (todo.reminderTimes || []).length ? el("span", { className: "reminders",
      title: `Reminders: ${todo.reminderTimes.map(when).join(", ")}`,
      textContent: ` · ${todo.reminderTimes.length} reminder${todo.reminderTimes.length === 1 ? "" : "s"}` }) : "",
    todo.pending ? el("span", { className: "pending", textContent: " · waiting to sync" }) : "",
    (todo.conflicts || []).length ? el("span", { className: "conflicted",
      textContent: ` · conflict on ${todo.conflicts.map((c) => c.field).join(", ")}` }) : "");
  return el("li", { id: `todo-${todo.id}`, className: `todo${todo.completed ? " done" : ""}${todo.pending ? " pending" : ""}` },
    check,
    el("div", { className: "text" },
      el("label", { htmlFor: checkId, className: "title", textContent: todo.title }),
      todo.description ? el("p", { className: "description", textContent: todo.description }) : "",
      meta),
    el("div", { className: "controls" }, priorityLabel, priority, assignLabel, assign, dueLabel, due, edit, remove, history));
}

function historyButton(todo) {
  const button = el("button", { type: "button", textContent: "History", ariaLabel: `History of ${todo.title}` });
  button.addEventListener("click", () => online("The history") && run(() => openHistory(todo)));
  return button;
}

// A deleted todo: gone from the list, its history still there for those who could see it.
function deletedItem(todo) {
  return el("li", { id: `todo-${todo.id}`, className: "todo done" }, el("span"),
    el("div", { className: "text" },
      el("p", { className: "title", textContent: todo.title }),
      el("p", { className: "meta", textContent: `deleted ${when(todo.deletedAt)}${todo.userId === me ? "" : ` · by ${nameOf(todo.userId)}`}` })),
    el("div", { className: "controls" }, historyButton(todo)));
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
  if ($("#view").value === "deleted") return renderDeleted();
  const list = $("#todo-list");
  const items = visibleTodos();
  list.replaceChildren(...items.map(todoItem));
  $("#empty").hidden = items.length > 0;
}

async function renderDeleted() {
  if (!online("The deleted todos")) return;
  await run(async () => {
    const page = await api("GET", "/api/todos/?deleted=true&page_size=200");
    if ($("#view").value !== "deleted") return; // the view changed meanwhile
    $("#todo-list").replaceChildren(...page.results.map(deletedItem));
    $("#empty").hidden = page.results.length > 0;
  });
}

// --- history (time travel) ------------------------------------------------------------------
const SHOWN_FIELDS = [["title", "Title"], ["description", "Description"], ["priority", "Priority"], ["completed", "Completed"],
  ["assignedTo", "Assigned to"], ["dueDate", "Due"], ["reminderTimes", "Reminders"], ["teamId", "Team"], ["deletedAt", "Deleted"]];

function shownValue(field, value) {
  if (value === null || value === undefined || value === "" || (Array.isArray(value) && !value.length)) return "—";
  if (field === "assignedTo" || field === "userId") return nameOf(value);
  if (field === "teamId") return (teamOf(value) || { name: "a team" }).name;
  if (field === "dueDate" || field === "deletedAt" || field === "completedAt") return when(value);
  if (field === "reminderTimes") return value.map(when).join(", ");
  if (typeof value === "boolean") return value ? "yes" : "no";
  return String(value);
}

async function historyOf(todoId) {
  const items = [];
  for (let after = 0; ; after = items[items.length - 1].event.aggregateVersion) {
    const page = await api("GET", `/api/todos/${todoId}/events/?afterVersion=${after}&limit=1000`);
    items.push(...page);
    if (page.length < 1000) return items;
  }
}

async function openHistory(todo) {
  // The page knows a todo from its sync copy as soon as the server applied it; its history is
  // read from the projection, which follows a moment later.
  const items = await historyOf(todo.id).catch(() => []);
  if (!items.length) throw new Error("This todo's history is not readable yet: its events are on their way to the read side. Try again in a moment.");
  const last = items.length;
  const latest = await api("GET", `/api/todos/${todo.id}/?version=${last}`);
  $("#history-title").textContent = `History of “${latest.title}”`;
  $("#history-events").replaceChildren(...items.map(({ event, changes }) => el("li", { id: `history-v${event.aggregateVersion}` },
    el("p", { className: "meta" },
      el("strong", { textContent: `v${event.aggregateVersion} ${event.eventType}` }),
      ` · by ${nameOf(event.metadata.actorId || event.userId)} · ${when(event.occurredAt)} · `,
      el("code", { title: "correlation id", textContent: event.correlationId })),
    // The fields a person reads (a creation also sets its id, owner and time: the line above says so).
    el("ul", { className: "changes" }, ...changes.filter((c) => SHOWN_FIELDS.some(([f]) => f === c.field)).map((c) => el("li", {},
      `${SHOWN_FIELDS.find(([f]) => f === c.field)[1]}: `,
      el("del", { textContent: shownValue(c.field, c.before) }), " → ", el("ins", { textContent: shownValue(c.field, c.after) })))))));
  const slider = $("#history-version");
  slider.max = String(last);
  slider.value = String(last);
  const show = () => run(async () => {
    const version = Number(slider.value);
    $("#history-version-shown").textContent = `${version} of ${last}`;
    const then = version === last ? latest : await api("GET", `/api/todos/${todo.id}/?version=${version}`);
    if (Number(slider.value) !== version) return; // moved on meanwhile
    $("#history-state").replaceChildren(
      el("tr", {}, el("th", { textContent: "" }), el("th", { textContent: `At v${version}` }), el("th", { textContent: `Now (v${last})` })),
      ...SHOWN_FIELDS.map(([field, label]) => {
        const differs = JSON.stringify(then[field]) !== JSON.stringify(latest[field]);
        return el("tr", { className: differs ? "differs" : "" }, el("th", { textContent: label }),
          el("td", { textContent: shownValue(field, then[field]) }), el("td", { textContent: shownValue(field, latest[field]) }));
      }));
    for (const node of $("#history-events").children) node.classList.toggle("current", node.id === `history-v${version}`);
  });
  slider.oninput = show;
  await show();
  $("#history").showModal();
}
$("#history-close").addEventListener("click", () => $("#history").close());

function renderTeams() {
  const options = [["all", "All I can see"], ["mine", "Mine"], ["assigned", "Assigned to me"], ["personal", "Personal"],
    ...teams.map((t) => [`team:${t.id}`, `Team: ${t.name}`]), ["deleted", "Deleted"]];
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
  const changed = {};
  const title = $("#edit-title-input").value.trim();
  if (title && title !== todo.title) changed.title = title;
  if ($("#edit-description").value !== todo.description) changed.description = $("#edit-description").value;
  if (Object.keys(changed).length) run(() => sync.change("update", todo.id, changed));
});

$("#create").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  const title = form.title.value.trim();
  if (!title) { say("title: give the todo a title."); form.title.focus(); return; }
  const body = { title, description: form.description.value, priority: form.priority.value };
  if (form.teamId.value) body.teamId = form.teamId.value;
  if (form.dueDate.value && !online("A due date")) return;
  run(async () => {
    if (form.dueDate.value) { // a due date has no mutation: the REST API, online
      await api("POST", "/api/todos/", { ...body, dueDate: new Date(form.dueDate.value).toISOString() });
    } else {
      await sync.change("create", null, body);
    }
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
sync.start().catch((error) => say(`Sync could not start: ${error.message}`));
// Keeps this page and its scripts for opening it offline (sw.js). Browsers allow a service worker
// on https and on localhost only: elsewhere an open page still works offline, a reload does not.
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js").catch((error) => console.warn("no offline page:", error.message));
}
loadDevices();
loadConflicts();
loadPolicy();
setInterval(() => { loadDevices(); loadConflicts(); }, DEVICES_EVERY_MS);
