"""A device in tests: a socket to /ws/sync/ that says hello and keeps its copy of the todos and
its queue of changes (apps.sync.client) from every frame it reads."""
from apps.sync.client.queue import Queue
from apps.sync.client.replica import Replica
from tests.realtime.wsclient import Socket


class Device(Socket):
    def __init__(self, base: str, *, token: str, device_id: str, replica: Replica | None = None,
                 queue: Queue | None = None, hello: bool = True, **kwargs):
        super().__init__(base, token=token, path="/ws/sync/", origin=False, **kwargs)
        self.device_id = device_id
        self.queue = queue or Queue(replica=replica or Replica())
        self.replica = self.queue.replica
        self.applied = 0
        if hello:
            self.send({"type": "hello", "deviceId": device_id, "lastOffset": self.replica.offset})

    def read_until(self, predicate, **kwargs) -> dict:
        def apply_then(frame):
            self.queue.apply(frame)
            return predicate(frame)

        return super().read_until(apply_then, **kwargs)

    def ready(self, **kwargs) -> dict:
        return self.read_until(lambda f: f["type"] == "ready", what="ready", **kwargs)

    def until_offset(self, offset: int, **kwargs) -> None:
        if self.replica.offset < offset:
            self.read_until(lambda f: self.replica.offset >= offset, what=f"offset {offset}", **kwargs)

    def ack(self) -> None:
        self.send({"type": "ack", "offset": self.replica.offset})

    def push(self) -> None:
        """Send the queue's head (nothing when it is empty)."""
        if self.queue.pending:
            self.send({"type": "push", "mutations": self.queue.to_push()})

    def pushed(self, **kwargs) -> dict:
        """Push the queue and read the answer."""
        self.push()
        return self.read_until(lambda f: f["type"] == "pushed", what="pushed", **kwargs)
