"""A device in tests: a socket to /ws/sync/ that says hello and keeps its copy of the todos
(apps.sync.client.replica) from every frame it reads."""
from apps.sync.client.replica import Replica
from tests.realtime.wsclient import Socket


class Device(Socket):
    def __init__(self, base: str, *, token: str, device_id: str, replica: Replica | None = None, hello: bool = True,
                 **kwargs):
        super().__init__(base, token=token, path="/ws/sync/", origin=False, **kwargs)
        self.device_id = device_id
        self.replica = replica or Replica()
        self.applied = 0
        if hello:
            self.send({"type": "hello", "deviceId": device_id, "lastOffset": self.replica.offset})

    def read_until(self, predicate, **kwargs) -> dict:
        def apply_then(frame):
            self.replica.apply(frame)
            return predicate(frame)

        return super().read_until(apply_then, **kwargs)

    def ready(self, **kwargs) -> dict:
        return self.read_until(lambda f: f["type"] == "ready", what="ready", **kwargs)

    def until_offset(self, offset: int, **kwargs) -> None:
        if self.replica.offset < offset:
            self.read_until(lambda f: self.replica.offset >= offset, what=f"offset {offset}", **kwargs)

    def ack(self) -> None:
        self.send({"type": "ack", "offset": self.replica.offset})
