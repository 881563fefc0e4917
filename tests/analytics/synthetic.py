"""Todo activity of many users in time order, made up for analytics tests and benchmarks.

Unlike tests/projections/synthetic.py (one todo's events at a time), this is a timeline: users
act at random moments over a span, each on their own todos, and every user's events come in
time order, as the producer writes them.
"""
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from apps.todos import events


@dataclass
class _Todo:
    id: uuid.UUID
    version: int = 1
    completed: bool = False


@dataclass
class Timeline:
    users: list[int]
    rng: random.Random
    teams: dict[str, list[int]] = field(default_factory=dict)  # team id -> members
    open: dict[int, list[_Todo]] = field(default_factory=dict)

    def event(self, user: int, event_type: str, todo: _Todo, at: datetime, data: dict,
              actor: int | None = None) -> dict:
        stamp = events.iso(at)
        data = {"todoId": str(todo.id), **data}
        for name in ("createdAt", "updatedAt", "completedAt", "deletedAt", "assignedAt", "prioritizedAt"):
            if name in data:
                data[name] = stamp
        return events.new_envelope(
            event_type=event_type, aggregate_id=todo.id, aggregate_version=todo.version, user_id=str(user),
            data=data, correlation_id=f"synthetic-{todo.id.hex[:8]}-{todo.version}", occurred_at=at,
            metadata={"notificationRequired": False, "affectedUsers": [str(user)],
                      "category": events.CATEGORIES[event_type], "actorId": str(actor or user)})

    def create(self, user: int, at: datetime, *, priority: str | None = None, team: str | None = None) -> dict:
        todo = _Todo(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        self.open.setdefault(user, []).append(todo)
        return self.event(user, events.TODO_CREATED, todo, at, {
            "title": f"todo {todo.id.hex[:6]}", "description": "", "userId": str(user), "createdAt": "",
            "priority": priority or self.rng.choice(events.PRIORITIES), "dueDate": None, "teamId": team})

    def act(self, user: int, at: datetime) -> dict:
        """One event of `user` at `at`: a new todo, or a change to one of theirs."""
        todos = [todo for todo in self.open.get(user, [])]
        if not todos or self.rng.random() < 0.35:
            teams = [team for team, members in self.teams.items() if user in members]
            team = self.rng.choice(teams) if teams and self.rng.random() < 0.3 else None
            return self.create(user, at, team=team)
        todo = self.rng.choice(todos)
        todo.version += 1
        roll = self.rng.random()
        if roll < 0.1:
            self.open[user].remove(todo)
            return self.event(user, events.TODO_DELETED, todo, at, {"deletedAt": ""})
        if roll < 0.45 and not todo.completed:
            todo.completed = True
            return self.event(user, events.TODO_COMPLETED, todo, at, {"completedAt": ""})
        if roll < 0.6:
            return self.event(user, events.TODO_PRIORITIZED, todo, at,
                              {"priority": self.rng.choice(events.PRIORITIES), "prioritizedAt": ""})
        if roll < 0.75:
            assignee = self.rng.choice(self.users)
            return self.event(user, events.TODO_ASSIGNED, todo, at, {"assignedTo": str(assignee), "assignedAt": ""})
        return self.event(user, events.TODO_UPDATED, todo, at, {"title": "changed", "description": "",
                                                                 "updatedAt": ""})


def activity(*, users: list[int], count: int, start: datetime, span: timedelta, seed: int = 1,
             teams: dict[str, list[int]] | None = None) -> list[dict]:
    """`count` events of `users` at random moments in [start, start + span), in time order."""
    rng = random.Random(seed)
    timeline = Timeline(users=users, rng=rng, teams=teams or {})
    moments = sorted(rng.random() for _ in range(count))
    return [timeline.act(rng.choice(users), start + span * moment) for moment in moments]
