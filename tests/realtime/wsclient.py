"""A small synchronous WebSocket client for tests (websockets' sync client)."""
import json
import time
from urllib.parse import urlsplit

from websockets.sync.client import connect


class Socket:
    """One authenticated socket to /ws/todos/ (or `path`); keeps every frame it read."""

    def __init__(self, base: str, *, token: str | None = None, after: dict[int, int] | None = None,
                 origin: str | None | bool = None, headers: dict | None = None, path: str = "/ws/todos/", **query):
        """`origin=False` sends no Origin header, as a native (non-browser) client does;
        `headers` adds some (a session cookie)."""
        if token:
            query["token"] = token
        if after is not None:
            query["after"] = ",".join(f"{p}:{o}" for p, o in sorted(after.items()))
        netloc = urlsplit(base).netloc
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        self.ws = connect(f"ws://{netloc}{path}?{qs}", origin=None if origin is False else (origin or base), open_timeout=10,
                          additional_headers=headers, legacy=True)
        self.frames: list[dict] = []

    def send(self, frame) -> None:
        self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    def read_until(self, predicate, *, timeout: float = 30.0, what: str = "a frame") -> dict:
        """Read frames until one satisfies `predicate`; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; got {self.frames}")
            try:
                frame = json.loads(self.ws.recv(timeout=remaining))
            except TimeoutError:
                continue
            self.frames.append(frame)
            if predicate(frame):
                return frame

    def events(self) -> list[dict]:
        return [f["event"] for f in self.frames if f["type"] == "event"]

    def positions(self) -> dict[int, int]:
        seen: dict[int, int] = {}
        for frame in self.frames:
            if frame["type"] == "event":
                p, o = frame["position"]["partition"], frame["position"]["offset"]
                seen[p] = max(seen.get(p, -1), o)
        return seen

    def close(self) -> None:
        self.ws.close()


def event_of(todo_id: str, event_type: str | None = None):
    return lambda f: (f["type"] == "event" and f["event"]["aggregateId"] == str(todo_id)
                      and (event_type is None or f["event"]["eventType"] == event_type))
