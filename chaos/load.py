"""A chaos client: one process of the run's load, as a user's programs would be — commands through
the REST API and a live socket per user — recording what the system answered and what the
sockets showed, for the checker.

    python -m chaos.load CONFIG.json

CONFIG: {"base": "http://127.0.0.1:PORT", "dir": "...", "client": N, "seed": S, "rate": commands/s
per user, "users": [{"id": ..., "token": ..., "team": team id or null}]}. It runs until the file
`stop-commands` appears in `dir`, then keeps its sockets open (catching up) until `stop`
appears. It writes:

- commands-N.jsonl: one line per command: its correlationId, what it was, the answer's status (0:
  no answer — the connection failed or timed out, so it may or may not have happened), the todo
  and the version the answer gave, and how many events an acknowledged one must have made;
- sockets-N.json, rewritten every second: per user, the versions of each todo its socket
  showed, how often it connected, the close codes, the catch-ups it asked for.

The commands of a todo come from its owner's loop alone, one at a time, each with the version it
expects: a 409 or a lost answer makes the loop read the todo afresh.
"""
import json
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import requests
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect

TIMEOUT_S = 15.0
ACKNOWLEDGED = {200, 201, 202, 204}
REMINDER_LEAD_S = (3.0, 20.0)  # a reminder comes this long after the command that set it


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Commands:
    """One user's command loop."""

    def __init__(self, *, base: str, user: dict, rng: random.Random, record):
        self.base = base
        self.user = user
        self.rng = rng
        self.record = record
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {user['token']}"
        self.todos: dict[str, dict] = {}  # id -> {"version": v, "completed": bool}

    def call(self, action: str, method: str, path: str, body: dict, *, todo: str | None = None,
             events: int = 1) -> tuple[int, dict]:
        cid = str(uuid.uuid4())
        status, answer = 0, {}
        try:
            response = self.http.request(method, self.base + path, json=body, timeout=TIMEOUT_S,
                                         headers={"X-Correlation-ID": cid})
            status = response.status_code
            answer = response.json() if response.content and "json" in response.headers.get("Content-Type", "") else {}
        except (requests.RequestException, ValueError):
            pass
        version = answer.get("version") if isinstance(answer, dict) else None
        if status == 204 and todo in self.todos:
            version = self.todos[todo]["version"] + 1  # a delete answers no body; it expected this version
        self.record({"cid": cid, "user": self.user["id"], "action": action, "status": status,
                     "todo": (answer.get("id") if isinstance(answer, dict) else None) or todo,
                     "version": version, "events": events, "at": time.time()})
        return status, answer if isinstance(answer, dict) else {}

    def refresh(self, todo: str) -> None:
        """After a 409 or a lost answer: the todo as the server has it now (or gone)."""
        try:
            response = self.http.get(f"{self.base}/api/todos/{todo}/", timeout=TIMEOUT_S)
        except requests.RequestException:
            return  # try again at its next command
        if response.status_code == 404:
            self.todos.pop(todo, None)
        elif response.status_code == 200:
            body = response.json()
            self.todos[todo] = {"version": body["version"], "completed": body["completed"]}

    def step(self) -> None:
        rng, todos = self.rng, self.todos
        choice = rng.random()
        if not todos or choice < 0.3 or len(todos) < 3:
            self.create()
            return
        todo = rng.choice(list(todos))
        expected = todos[todo]["version"]
        if choice < 0.6:
            outcome = self.call("update", "PATCH", f"/api/todos/{todo}/",
                                {"title": f"edited {uuid.uuid4().hex[:6]}", "expectedVersion": expected}, todo=todo)
        elif choice < 0.75:
            outcome = self.call("prioritize", "POST", f"/api/todos/{todo}/prioritize/",
                                {"priority": rng.choice(["low", "medium", "high", "urgent"]), "expectedVersion": expected},
                                todo=todo)
        elif choice < 0.88 and not todos[todo]["completed"]:
            outcome = self.call("complete", "POST", f"/api/todos/{todo}/complete/", {"expectedVersion": expected},
                                todo=todo)
            if outcome[0] in ACKNOWLEDGED:
                todos[todo]["completed"] = True
        else:
            outcome = self.call("delete", "DELETE", f"/api/todos/{todo}/", {"expectedVersion": expected}, todo=todo)
            if outcome[0] in ACKNOWLEDGED:
                todos.pop(todo)
                return
        status, answer = outcome
        if status in ACKNOWLEDGED and answer.get("version"):
            todos[todo]["version"] = answer["version"]
        elif status == 204:
            todos[todo]["version"] = expected + 1
        elif status not in ACKNOWLEDGED:
            self.refresh(todo)

    def create(self) -> None:
        body = {"title": f"chaos {uuid.uuid4().hex[:8]}"}
        events = 1
        if self.user["team"] and self.rng.random() < 0.3:
            body["teamId"] = self.user["team"]
        if self.rng.random() < 0.2:
            # A reminder due within the run: the scheduler fires it, the notifier mails it.
            now = datetime.now(UTC)
            body["dueDate"] = iso(now + timedelta(hours=1))
            body["reminderTimes"] = [iso(now + timedelta(seconds=self.rng.uniform(*REMINDER_LEAD_S)))]
            events = 2
        status, answer = self.call("create", "POST", "/api/todos/", body, events=events)
        if status in ACKNOWLEDGED and answer.get("id"):
            self.todos[answer["id"]] = {"version": answer["version"], "completed": False}


class Watcher:
    """One user's live socket, as the web page keeps it: reconnect with the positions seen, ask
    for the events of a gap, reload over REST when a catch-up was cut short."""

    def __init__(self, *, base: str, user: dict):
        self.base, self.user = base, user
        self.versions: dict[str, set[int]] = defaultdict(set)
        self.positions: dict[int, int] = {}
        self.connects = 0
        self.closes: Counter = Counter()
        self.catchups = 0
        self.incomplete = 0
        self.lock = threading.Lock()

    def contiguous(self, todo: str) -> int:
        seen, n = self.versions[todo], 0
        while n + 1 in seen:
            n += 1
        return n

    def on_event(self, ws, frame: dict) -> None:
        envelope = frame["event"]
        todo, version = envelope["aggregateId"], envelope["aggregateVersion"]
        with self.lock:
            upto = self.contiguous(todo)
            self.versions[todo].add(version)
            if "position" in frame:
                p, o = frame["position"]["partition"], frame["position"]["offset"]
                self.positions[p] = max(self.positions.get(p, -1), o)
        if version > upto + 1:  # a gap: live pushes may be dropped; ask for what is missing
            self.ask(ws, todo, upto, version)

    def ask(self, ws, todo: str, after: int, before: int) -> None:
        self.catchups += 1
        ws.send(json.dumps({"type": "catchup", "todoId": todo, "afterVersion": after, "beforeVersion": before}))

    def reload(self, ws) -> None:
        """A catch-up cut short: read the list afresh and ask for what each todo lacks."""
        self.incomplete += 1
        http = requests.Session()
        http.headers["Authorization"] = f"Token {self.user['token']}"
        url = f"{self.base}/api/todos/?page_size=100"
        while url:
            page = http.get(url, timeout=TIMEOUT_S).json()
            for todo in page["results"]:
                if todo["version"] > self.contiguous(todo["id"]):
                    self.ask(ws, todo["id"], self.contiguous(todo["id"]), todo["version"] + 1)
            url = page.get("next")

    def run(self, stop: threading.Event) -> None:
        netloc = urlsplit(self.base).netloc
        backoff = 0.5
        while not stop.is_set():
            after = ",".join(f"{p}:{o}" for p, o in sorted(self.positions.items()))
            try:
                with connect(f"ws://{netloc}/ws/todos/?token={self.user['token']}&after={after}", origin=None,
                             open_timeout=10, close_timeout=2) as ws:
                    self.connects += 1
                    while not stop.is_set():
                        try:
                            frame = json.loads(ws.recv(timeout=0.5))
                        except TimeoutError:
                            continue
                        if frame.get("type") == "event":
                            self.on_event(ws, frame)
                        elif frame.get("type") == "ready":
                            backoff = 0.5
                            if not frame.get("complete", True):
                                self.reload(ws)
                        elif frame.get("type") == "reload":
                            self.reload(ws)
            except ConnectionClosed as closed:
                self.closes[str(closed.rcvd.code if closed.rcvd else "none")] += 1
            except (OSError, InvalidHandshake, TimeoutError, requests.RequestException, ValueError) as exc:
                self.closes[type(exc).__name__] += 1
            stop.wait(backoff)  # before reconnecting: the web role may be restarting
            backoff = min(backoff * 2, 8.0)

    def view(self) -> dict:
        with self.lock:
            return {"versions": {t: sorted(v) for t, v in self.versions.items()}, "connects": self.connects,
                    "closes": dict(self.closes), "catchups": self.catchups, "incomplete": self.incomplete}


def main(config_path: str) -> int:
    config = json.loads(Path(config_path).read_text())
    folder, n = Path(config["dir"]), config["client"]
    stop_commands, stop = folder / "stop-commands", threading.Event()
    log = open(folder / f"commands-{n}.jsonl", "a")
    lock = threading.Lock()

    def record(line: dict) -> None:
        with lock:
            log.write(json.dumps(line) + "\n")
            log.flush()

    watchers = [Watcher(base=config["base"], user=user) for user in config["users"]]
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in watchers]

    def loop(user: dict, seed: int) -> None:
        commands = Commands(base=config["base"], user=user, rng=random.Random(seed), record=record)
        interval = 1.0 / config["rate"]
        while not stop_commands.exists():
            began = time.monotonic()
            commands.step()
            time.sleep(max(0.0, interval - (time.monotonic() - began)))  # the load's pace, not a wait

    loops = [threading.Thread(target=loop, args=(user, config["seed"] * 100 + i))
             for i, user in enumerate(config["users"])]
    for thread in threads + loops:
        thread.start()
    views = folder / f"sockets-{n}.json"
    while not (folder / "stop").exists():
        partial = views.with_suffix(".tmp")
        partial.write_text(json.dumps({str(w.user["id"]): w.view() for w in watchers}))
        os.replace(partial, views)
        time.sleep(1.0)  # how often the views are written for the checker
    stop.set()
    for thread in loops + threads:
        thread.join(30)
    views.write_text(json.dumps({str(w.user["id"]): w.view() for w in watchers}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
