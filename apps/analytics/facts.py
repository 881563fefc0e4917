"""What the analytics topology computes, as pure functions shared by the stream and the batch.

A todo event becomes one *fact*: the few things the metrics need (what happened, the todo's
team and priority, who did it, how long it took to complete), found through the todo's state
(`TodoFacts`, kept per todo in the owner's state store). Window values are then folded from
facts, and a window value becomes the rows of `analytics_window` (metric, team, dimension,
value). apps.analytics.processor runs these in its windows, batch by batch; apps.analytics.verify
runs them over the whole topic at once, as the oracle the stream is checked against.
"""
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from apps.todos import events

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UNKNOWN_PRIORITY = "unknown"  # a todo whose TodoCreated the stream never saw (hostile data)

CREATED, COMPLETED, OTHER = "created", "completed", "other"
KINDS = {
    events.TODO_CREATED: CREATED,
    events.TODO_COMPLETED: COMPLETED,
    events.TODO_UPDATED: OTHER,
    events.TODO_DELETED: OTHER,
    events.TODO_ASSIGNED: OTHER,
    events.TODO_PRIORITIZED: OTHER,
    events.TODO_SCHEDULED: OTHER,
    events.TODO_CONFLICT_DETECTED: OTHER,
    events.TODO_CONFLICT_RESOLVED: OTHER,
}

# The metrics a window value turns into (analytics_window.metric), with what `dim` holds.
M_CREATED = "created"  # dim: priority
M_COMPLETED = "completed"  # dim: priority
M_COMPLETION_MS = "completion_ms"  # dim: priority; the sum of creation → completion times
M_COMPLETION_N = "completion_n"  # dim: priority; how many completions that sum covers
M_ACTIVE = "active"  # dim: the acting user's id; value: their events
M_ASSIGNED = "assigned"  # dim: "<assigner>><assignee>"; value: assignments
M_EVENTS = "events"  # dim: ""; the sliding window's events


def epoch_ms(moment: str) -> int:
    """An event's ISO 8601 instant (always with its offset: the envelope schema) in epoch ms."""
    parsed = datetime.fromisoformat(moment)
    return (parsed - EPOCH) // timedelta(milliseconds=1)


def fact_of(envelope: dict, todo: dict | None, at: int | None = None) -> tuple[dict, dict | None]:
    """The fact of one current-version event (events.read) and the todo's state after it (None:
    forget the todo; the same object: unchanged). `todo` is the state before it: {"c": created
    ms, "p": priority, "t": team}; `at` the event's occurredAt in epoch ms, if the caller has it.

    A fact: {"k": created|completed|other, "t": team id or "", "p": priority, "u": actor id,
    "to": assignee (assignments only), "d": ms from creation to completion (completions only)}.
    """
    event_type, data = envelope["eventType"], envelope["data"]
    at = epoch_ms(envelope["occurredAt"]) if at is None else at
    if event_type == events.TODO_CREATED:
        todo = {"c": at, "p": data["priority"], "t": data["teamId"] or ""}
    fact: dict[str, Any] = {
        "k": KINDS[event_type],
        "t": todo["t"] if todo else "",
        "p": todo["p"] if todo else UNKNOWN_PRIORITY,
        "u": envelope["metadata"]["actorId"] or envelope["userId"],
    }
    if event_type == events.TODO_COMPLETED and todo is not None:
        fact["d"] = max(0, at - todo["c"])
    elif event_type == events.TODO_ASSIGNED and data["assignedTo"]:
        fact["to"] = data["assignedTo"]
    elif event_type == events.TODO_PRIORITIZED and todo is not None:
        todo = {**todo, "p": data["priority"]}
    elif event_type == events.TODO_DELETED:
        todo = None
    return fact, todo


# --- window values ----------------------------------------------------------------------
# Folded from facts with `add_*` (apps.analytics.windows.UserWindows calls them). Plain dicts
# of lists and ints: they are the state store's values, serialised as JSON.

def new_activity() -> dict:
    """The tumbling windows' value: {"c": {"team|priority": [created, completed, completion ms
    sum, completions timed]}, "a": {"team|actor": events}, "s": {"team|from|to": assignments}}."""
    return {"c": {}, "a": {}, "s": {}}


def add_activity(value: dict, fact: dict) -> dict:
    team = fact["t"]
    if fact["k"] != OTHER:
        cell = value["c"].setdefault(f"{team}|{fact['p']}", [0, 0, 0, 0])
        if fact["k"] == CREATED:
            cell[0] += 1
        else:
            cell[1] += 1
            if "d" in fact:
                cell[2] += fact["d"]
                cell[3] += 1
    actor = f"{team}|{fact['u']}"
    value["a"][actor] = value["a"].get(actor, 0) + 1
    if "to" in fact:
        pair = f"{team}|{fact['u']}|{fact['to']}"
        value["s"][pair] = value["s"].get(pair, 0) + 1
    return value


def new_rate() -> dict:
    """The hopping window's value: {"team|priority": [created, completed]}."""
    return {}


def add_rate(value: dict, fact: dict) -> dict:
    if fact["k"] != OTHER:
        cell = value.setdefault(f"{fact['t']}|{fact['p']}", [0, 0])
        cell[0 if fact["k"] == CREATED else 1] += 1
    return value


def new_events() -> dict:
    """The sliding window's value: {team: events} ("" for the owner's own todos)."""
    return {}


def add_events(value: dict, fact: dict) -> dict:
    value[fact["t"]] = value.get(fact["t"], 0) + 1
    return value


# --- rows -------------------------------------------------------------------------------
_TEAM = re.compile(r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # fullmatch: "" or a UUID
_PRIORITIES = (*events.PRIORITIES, UNKNOWN_PRIORITY)
MAX_COUNT = 2**62


def _parts(key: Any, *patterns: re.Pattern | tuple) -> list[str]:
    parts = key.split("|") if isinstance(key, str) else []
    if len(parts) != len(patterns) or not all(
            part in pattern if isinstance(pattern, tuple) else pattern.fullmatch(part)
            for part, pattern in zip(parts, patterns)):
        raise ValueError(f"bad cell key {str(key)[:80]!r}")
    return parts


def _counts(value: Any, size: int) -> list[int]:
    values = value if isinstance(value, list) and len(value) == size else [None]
    if not all(type(v) is int and 0 <= v < MAX_COUNT for v in values):
        raise ValueError(f"bad counts {str(value)[:80]!r}")
    return values


def rows_of(shape: str, value: Any) -> list[tuple[str, str, str, int]]:
    """A window value as (team, metric, dim, value) rows; team "" means no team. Strict: the
    value may come from anyone who can write to the topic, so anything else is a ValueError."""
    if not isinstance(value, dict):
        raise ValueError("a window value is an object")
    rows = []
    if shape == "activity":
        if set(value) != {"c", "a", "s"} or not all(isinstance(part, dict) for part in value.values()):
            raise ValueError("an activity value has c, a and s objects")
        for key, cell in value["c"].items():
            team, priority = _parts(key, _TEAM, _PRIORITIES)
            created, completed, ms_sum, timed = _counts(cell, 4)
            rows += [(team, M_CREATED, priority, created), (team, M_COMPLETED, priority, completed)]
            if timed:
                rows += [(team, M_COMPLETION_MS, priority, ms_sum), (team, M_COMPLETION_N, priority, timed)]
        for key, count in value["a"].items():
            team, actor = _parts(key, _TEAM, events.USER_ID)
            rows.append((team, M_ACTIVE, actor, *_counts([count], 1)))
        for key, count in value["s"].items():
            team, assigner, assignee = _parts(key, _TEAM, events.USER_ID, events.USER_ID)
            rows.append((team, M_ASSIGNED, f"{assigner}>{assignee}", *_counts([count], 1)))
    elif shape == "rate":
        for key, cell in value.items():
            team, priority = _parts(key, _TEAM, _PRIORITIES)
            created, completed = _counts(cell, 2)
            rows += [(team, M_CREATED, priority, created), (team, M_COMPLETED, priority, completed)]
    elif shape == "events":
        for team, count in value.items():
            _parts(team, _TEAM)
            rows.append((team, M_EVENTS, "", *_counts([count], 1)))
    else:
        raise ValueError(f"unknown window shape {shape!r}")
    return rows
