"""The todo events: envelope, JSON Schema validation and upcasting of older schema versions.

Every event on `todo-events` is one JSON envelope (schemas/envelope.json) whose `data` is
checked against schemas/<eventType>.v<schemaVersion>.json. The producer validates before an
event enters the outbox; consumers call `read()`, which validates the event at the version
it was written with and lifts it to the current version, so handlers only ever see the
current shape.
"""
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs

from polystack.streaming.registry import NonRetriableError

SCHEMAS = Path(__file__).resolve().parent / "schemas"

TODO_CREATED = "TodoCreated"
TODO_UPDATED = "TodoUpdated"
TODO_COMPLETED = "TodoCompleted"
TODO_DELETED = "TodoDeleted"
TODO_ASSIGNED = "TodoAssigned"
TODO_PRIORITIZED = "TodoPrioritized"
TODO_SCHEDULED = "TodoScheduled"
# Phase 5: two devices changed one field concurrently under the manual policy (apps.sync), and
# a user chose the value. They change no field themselves: a resolution's new value comes as
# the ordinary event of that field (TodoUpdated, ...), right after TodoConflictResolved.
TODO_CONFLICT_DETECTED = "TodoConflictDetected"
TODO_CONFLICT_RESOLVED = "TodoConflictResolved"

CURRENT_VERSIONS: dict[str, int] = {
    TODO_CREATED: 3,
    TODO_UPDATED: 1,
    TODO_COMPLETED: 1,
    TODO_DELETED: 1,
    TODO_ASSIGNED: 2,
    TODO_PRIORITIZED: 1,
    TODO_SCHEDULED: 1,
    TODO_CONFLICT_DETECTED: 1,
    TODO_CONFLICT_RESOLVED: 1,
}
PRIORITIES = ("low", "medium", "high", "urgent")
# A user id as events carry it: ASCII digits that fit a bigint (str.isdigit() accepts "²"),
# anchored at both ends (`$` would let a trailing newline through).
USER_ID = re.compile(r"\A[1-9][0-9]{0,17}\Z")
# metadata.category of each type: what notification preferences and clients filter by.
CATEGORIES: dict[str, str] = {
    TODO_CREATED: "created",
    TODO_UPDATED: "updated",
    TODO_COMPLETED: "completed",
    TODO_DELETED: "deleted",
    TODO_ASSIGNED: "assignment",
    TODO_PRIORITIZED: "priority",
    TODO_SCHEDULED: "schedule",
    TODO_CONFLICT_DETECTED: "conflict",
    TODO_CONFLICT_RESOLVED: "conflict",
}
DEFAULT_PRIORITY = "medium"
# Data keys that hold a moment besides those ending in "At" (check_moments).
MOMENT_KEYS = frozenset({"dueDate", "snoozeUntil"})


class InvalidEventError(NonRetriableError):
    """An event that breaks its schema, or of an unknown type or version: never retried."""


class UnknownVersionError(InvalidEventError):
    """A valid-looking event of a schema version newer than this code: a real event that an
    older consumer cannot read (during a deploy), not garbage."""


def _todo_created_v1_to_v2(data: dict) -> dict:
    return {**data, "priority": DEFAULT_PRIORITY, "dueDate": None}


def _todo_created_v2_to_v3(data: dict) -> dict:
    return {**data, "teamId": None}


def _same_data(data: dict) -> dict:
    """A version that only widened what the data may hold (TodoAssigned v2 allows null)."""
    return data


# (eventType, version) -> function lifting `data` from that version to the next one.
UPCASTERS: dict[tuple[str, int], Callable[[dict], dict]] = {
    (TODO_CREATED, 1): _todo_created_v1_to_v2,
    (TODO_CREATED, 2): _todo_created_v2_to_v3,
    (TODO_ASSIGNED, 1): _same_data,
}


def default_metadata(envelope: dict) -> dict:
    """The metadata of an event written before producers set it (Phase 1): the owner (and an
    assignee it names) are affected, and nobody is notified about history."""
    affected = [envelope["userId"]]
    assignee = envelope["data"].get("assignedTo")
    if assignee and assignee not in affected:
        affected.append(assignee)
    return {
        "notificationRequired": False,
        "affectedUsers": affected,
        "category": CATEGORIES[envelope["eventType"]],
        "actorId": None,
    }


@cache
def _validator(schemas: Path, name: str) -> jsonschema_rs.Validator:
    """The schema compiled by jsonschema-rs (Rust): every consumer validates every event, and it
    takes ~1 us for an envelope where fastjsonschema's generated Python took ~7 and an
    interpreted validator ~150. Offline: no $ref is ever fetched; masked: an error message never
    repeats the (hostile, maybe huge) value it refused."""
    path = schemas / f"{name}.json"
    if not path.exists():
        raise InvalidEventError(f"no schema {name}")
    return jsonschema_rs.validator_for(json.loads(path.read_text()), mask="value", offline=True)


def check(name: str, instance: Any, *, schemas: Path = SCHEMAS) -> None:
    """Raise InvalidEventError unless `instance` matches the schema `<schemas>/<name>.json`. Every
    event family (todo events here, reminder events in apps.todos.reminder_events) checks with it."""
    try:
        _validator(schemas, name).validate(instance)  # cached by (directory, name): no path built per event
    except jsonschema_rs.ValidationError as exc:
        where = "/".join(str(part) for part in exc.instance_path) or "event"
        raise InvalidEventError(f"{name}: {where}: {exc.message}"[:500]) from None  # keys are hostile too
    except ValueError as exc:  # what JSON cannot hold (a lone surrogate from a lenient parser)
        raise InvalidEventError(f"{name}: not valid JSON data: {str(exc)[:200]}") from None


def check_moments(envelope: dict) -> None:
    """A schema pattern cannot tell 2026-02-30 or 99:99 from a real moment; PostgreSQL can, and
    would refuse the write. Every timestamp (occurredAt, the data's *At, dueDate, snoozeUntil,
    reminderTimes) must parse, and be a moment of years 1 to 9999 in UTC too: 9999-12-31T23:59-23:59 is stored
    as year 10000, which no Python reader of the row could load again."""
    moments = [("occurredAt", envelope["occurredAt"])]
    moments += [(key, value) for key, value in envelope["data"].items()
                if isinstance(value, str) and (key.endswith("At") or key in MOMENT_KEYS)]
    moments += [("reminderTimes", value) for value in envelope["data"].get("reminderTimes") or ()]
    for key, value in moments:
        try:
            datetime.fromisoformat(value).astimezone(UTC)
        except (ValueError, OverflowError):
            raise InvalidEventError(f"{key}: {value[:40]!r} is not a real date and time") from None


def check_known(envelope: dict, current_versions: dict[str, int]) -> None:
    """Raise unless the (schema-valid) envelope is of a type and version this code reads."""
    event_type, version = envelope["eventType"], envelope["schemaVersion"]
    if event_type not in current_versions:
        raise InvalidEventError(f"unknown eventType {event_type!r}")
    if version > current_versions[event_type]:
        raise UnknownVersionError(
            f"{event_type} v{version} is newer than this code knows (v{current_versions[event_type]})")


def validate(envelope: dict) -> None:
    """Raise InvalidEventError unless `envelope` matches its envelope and data schemas. The
    schemas are as strict as what the database stores: an event that passes never fails a
    write (ids fit a bigint, timestamps are real, no NUL in text)."""
    check("envelope", envelope)
    check_known(envelope, CURRENT_VERSIONS)
    check(f"{envelope['eventType']}.v{envelope['schemaVersion']}", envelope["data"])
    check_moments(envelope)


def upcast(envelope: dict) -> dict:
    """Lift a valid envelope to the current schema version of its type, with metadata (a new
    dict when anything changed)."""
    event_type, version = envelope["eventType"], envelope["schemaVersion"]
    data = envelope["data"]
    while version < CURRENT_VERSIONS[event_type]:
        data = UPCASTERS[(event_type, version)](data)
        version += 1
    if version != envelope["schemaVersion"]:
        envelope = {**envelope, "schemaVersion": version, "data": data}
    if "metadata" not in envelope:
        envelope = {**envelope, "metadata": default_metadata(envelope)}
    return envelope


def read(payload: Any) -> dict:
    """Every consumer's way in: validate at the written version, then upcast."""
    if not isinstance(payload, dict):
        raise InvalidEventError("an event must be a JSON object")
    validate(payload)
    return upcast(payload)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_envelope(
    *,
    event_type: str,
    aggregate_id: uuid.UUID,
    aggregate_version: int,
    user_id: str,
    data: dict,
    correlation_id: str,
    occurred_at: datetime,
    metadata: dict,
    causation_id: str | None = None,
) -> dict:
    """A current-version envelope, validated: an invalid event never reaches the outbox."""
    envelope = {
        "eventId": str(uuid.uuid4()),
        "eventType": event_type,
        "schemaVersion": CURRENT_VERSIONS[event_type],
        "occurredAt": iso(occurred_at),
        "aggregateId": str(aggregate_id),
        "aggregateVersion": aggregate_version,
        "userId": user_id,
        "correlationId": correlation_id,
        "causationId": causation_id,
        "metadata": metadata,
        "data": data,
    }
    validate(envelope)
    return envelope
