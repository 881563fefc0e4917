"""The terminal client's network side: the REST calls it needs (a token, registering the
device, resolving a conflict) and one sync session over /ws/sync/ — hello, catch up, push the
queue, acknowledge — applying every frame to the device's queue (apps.sync.client.queue)."""
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit

from websockets.sync.client import connect

from apps.sync.client.queue import Queue


class SyncClientError(Exception):
    """The server refused, or could not be reached: one line for the user."""


def _request(server: str, path: str, *, method: str = "GET", body: dict | None = None,
             token: str | None = None) -> dict | list:
    request = urllib.request.Request(server.rstrip("/") + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", "Accept": "application/json",
                                              **({"Authorization": f"Token {token}"} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise SyncClientError(f"{method} {path}: {exc.code} {exc.read()[:300].decode(errors='replace')}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise SyncClientError(f"cannot reach {server}: {exc}") from None


def obtain_token(server: str, username: str, password: str) -> str:
    return _request(server, "/api/auth/token/", method="POST", body={"username": username, "password": password})[
        "token"]


def register_device(server: str, token: str, name: str) -> str:
    return _request(server, "/api/devices/", method="POST", body={"name": name, "platform": "cli"}, token=token)[
        "deviceId"]


def resolve_conflict(server: str, token: str, conflict_id: str, value) -> dict:
    return _request(server, f"/api/conflicts/{conflict_id}/resolve/", method="POST", body={"value": value},
                    token=token)


def sync(*, server: str, token: str, device_id: str, queue: Queue, on_frame: Callable[[dict], None] = lambda f: None,
         follow: bool = False, timeout: float = 30.0) -> list[dict]:
    """One session: catch up, push everything pending, wait for what the pushes changed to
    come back, acknowledge; with `follow`, then keep applying live records until interrupted.
    `on_frame` sees every frame after it is applied (to save the store, print a change).
    Returns the results of the pushed mutations."""
    parts = urlsplit(server)
    scheme = "wss" if parts.scheme == "https" else "ws"
    results: list[dict] = []
    try:
        with connect(f"{scheme}://{parts.netloc}/ws/sync/?token={token}", open_timeout=10,
                     max_size=16 * 1024 * 1024) as ws:
            def read_until(done: Callable[[dict], bool], what: str) -> dict:
                deadline = time.monotonic() + timeout
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise SyncClientError(f"no {what} from the server within {timeout:.0f} s")
                    try:
                        frame = json.loads(ws.recv(timeout=left))
                    except TimeoutError:
                        continue
                    if frame.get("type") == "error":
                        raise SyncClientError(f"the server said: {frame.get('error')}")
                    queue.apply(frame)
                    on_frame(frame)
                    if done(frame):
                        return frame

            ws.send(json.dumps({"type": "hello", "deviceId": device_id, "lastOffset": queue.replica.offset}))
            read_until(lambda f: f["type"] == "ready", "ready")
            while queue.pending:
                sent = queue.to_push()
                ws.send(json.dumps({"type": "push", "mutations": sent}))
                answer = read_until(lambda f: f["type"] == "pushed", "answer to the push")
                results += answer["results"]
                if answer.get("refused") and queue.pending and queue.pending[0]["id"] == sent[0]["id"]:
                    raise SyncClientError(f"the server refused the push: {answer['refused']}")
            # What the pushes changed comes back as records: wait a moment for them, so that the
            # copy shows it (those that do not come in time come at the next session).
            wanted = {r["todoId"]: r["version"] for r in results if r.get("version")}
            deleted = {r["todoId"] for r in results if "deleted" in r.get("applied", [])}

            def arrived(frame: dict) -> bool:
                todos = queue.replica.todos
                return all(todos.get(todo_id, {}).get("version", 0) >= version
                           or (todo_id in deleted and todo_id not in todos) for todo_id, version in wanted.items())

            if not arrived({}):
                try:
                    read_until(arrived, "records of the changes pushed")
                except SyncClientError:
                    pass
            ws.send(json.dumps({"type": "ack", "offset": queue.replica.offset}))
            while follow:
                read_until(lambda f: f["type"] == "record", "a record")
                ws.send(json.dumps({"type": "ack", "offset": queue.replica.offset}))
    except OSError as exc:
        raise SyncClientError(f"cannot reach {server}: {exc}") from None
    except Exception as exc:  # websockets' closes and handshake failures: one line, the code with it
        if isinstance(exc, SyncClientError):
            raise
        raise SyncClientError(f"the sync connection ended: {exc}") from None
    return results
