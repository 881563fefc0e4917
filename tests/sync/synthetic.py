"""Todo events of users in teams, made up for the sync tests and benchmark: each names everyone
who sees its todo (owner, assignee, the team) in metadata.affectedUsers, and a former assignee
outside the team in formerUsers, as apps.todos.services does."""
import random
import uuid
from datetime import UTC, datetime, timedelta

from apps.todos import events

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


class Todos:
    """Open todos of a few users, some in one team of `team` members; `event()` makes the next
    event of a random todo (a new one a fifth of the time), in each todo's version order."""

    def __init__(self, *, users: list[int], team: list[int], rng: random.Random):
        self.users, self.team, self.rng = users, team, rng
        self.team_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        self.todos: list[dict] = []  # {"id", "owner", "version", "team", "assignee"}
        self.moment = T0

    def event(self) -> dict:
        self.moment += timedelta(milliseconds=self.rng.randrange(1, 2000))
        if not self.todos or self.rng.random() < 0.2:
            owner = self.rng.choice(self.users)
            in_team = owner in self.team and self.rng.random() < 0.5
            todo = {"id": uuid.UUID(int=self.rng.getrandbits(128), version=4), "owner": owner, "version": 0,
                    "team": self.team_id if in_team else None, "assignee": None}
            self.todos.append(todo)
            return self._next(todo, events.TODO_CREATED, {
                "title": f"todo {todo['id'].hex[:6]}", "description": "", "userId": str(owner),
                "createdAt": events.iso(self.moment), "priority": "medium", "dueDate": None,
                "teamId": str(todo["team"]) if todo["team"] else None})
        todo = self.rng.choice(self.todos)
        kind = self.rng.choice([events.TODO_UPDATED, events.TODO_PRIORITIZED, events.TODO_ASSIGNED,
                                events.TODO_COMPLETED, events.TODO_DELETED])
        stamp = events.iso(self.moment)
        if kind == events.TODO_UPDATED:
            return self._next(todo, kind, {"title": f"title {todo['version']}", "description": "d",
                                           "updatedAt": stamp})
        if kind == events.TODO_PRIORITIZED:
            return self._next(todo, kind, {"priority": self.rng.choice(events.PRIORITIES), "prioritizedAt": stamp})
        if kind == events.TODO_ASSIGNED:
            before = todo["assignee"]
            todo["assignee"] = self.rng.choice([None, *self.users])
            return self._next(todo, kind, {"assignedTo": str(todo["assignee"]) if todo["assignee"] else None,
                                           "assignedAt": stamp}, also=(before,))
        self.todos.remove(todo)  # completed or deleted: no more events of it
        data = {"completedAt": stamp} if kind == events.TODO_COMPLETED else {"deletedAt": stamp}
        return self._next(todo, kind, data)

    def _next(self, todo: dict, kind: str, data: dict, also: tuple = ()) -> dict:
        todo["version"] += 1
        seeing = {todo["owner"], todo["assignee"], *(self.team if todo["team"] else ())} - {None}
        former = set(also) - seeing - {None}
        metadata = {"notificationRequired": False, "affectedUsers": [str(u) for u in sorted(seeing | former)],
                    "category": events.CATEGORIES[kind], "actorId": str(todo["owner"])}
        if former:
            metadata["formerUsers"] = [str(u) for u in sorted(former)]
        return events.new_envelope(event_type=kind, aggregate_id=todo["id"], aggregate_version=todo["version"],
                                   user_id=str(todo["owner"]), data={"todoId": str(todo["id"]), **data},
                                   correlation_id=f"sync-{todo['version']}", occurred_at=self.moment,
                                   metadata=metadata)


def recipients(envelopes: list[dict]) -> list[tuple[str, str]]:
    """(eventId, recipient) of every record the coordinator should write for these events."""
    return [(e["eventId"], user) for e in envelopes for user in e["metadata"]["affectedUsers"]]


def store_records(user: int, count: int, *, first_offset: int, step: int = 1, seed: int = 0) -> None:
    """`count` records of one user's own todos, stored as the sink stores them (parsed, then
    apps.sync.services.records_store) at offsets `first_offset`, +`step`, ... of partition 0,
    without Kafka. Each todo is made up but for its id and version, which are its event's."""
    import orjson

    from apps.sync import services
    from apps.sync.records import parse

    stream, records = Todos(users=[user], team=[], rng=random.Random(seed)), []
    for n in range(count):
        event = stream.event()
        gone = event["eventType"] == events.TODO_DELETED
        todo = None if gone else {
            "id": event["aggregateId"], "title": "t", "description": "", "priority": "medium", "completed": False,
            "completedAt": None, "assignedTo": None, "userId": str(user), "dueDate": None, "reminderTimes": [],
            "teamId": None, "createdAt": event["occurredAt"], "updatedAt": event["occurredAt"],
            "version": event["aggregateVersion"]}
        value = orjson.dumps({"recipient": str(user), "visible": not gone, "todo": todo, "event": event})
        records.append(parse(str(user).encode(), value, 0, first_offset + step * n))
    services.records_store(records=records)
