"""device-sync-events records: their one door. Anyone who can write to the topic can write a
record, so each is checked whole before it is stored or sent to a device: its key is its
recipient, its event passes the todo events' door (apps.todos.events.read) and names the
recipient among those it affects, and its todo is that event's todo, at its version."""
import uuid
from dataclasses import dataclass

import orjson

from apps.todos import events
from polystack.streaming.registry import NonRetriableError

RECORD_FIELDS = {"recipient", "visible", "todo", "event"}
TODO_FIELDS = {"id": str, "title": str, "description": str, "priority": str, "completed": bool,
               "completedAt": (str, type(None)), "assignedTo": (str, type(None)), "userId": str,
               "dueDate": (str, type(None)), "reminderTimes": list, "teamId": (str, type(None)),
               "createdAt": str, "updatedAt": str, "version": int}
# A todo's open conflicts (apps.sync.coordinator): records written before them have none.
CONFLICT_FIELDS = {"conflictId", "field", "baseValue", "localValue", "remoteValue"}
CONFLICT_VALUE = (str, bool, type(None))
MAX_CONFLICTS = 50


class BadSyncRecordError(NonRetriableError):
    """A device-sync-events record that is not one the coordinator writes."""


@dataclass(frozen=True)
class SyncRecord:
    partition: int
    offset: int
    user_id: int
    todo_id: uuid.UUID
    event_id: uuid.UUID
    version: int
    visible: bool
    todo: dict | None
    text: str  # the record as JSON text, as devices receive it


def parse(key: bytes | None, value: bytes | None, partition: int, offset: int) -> SyncRecord:
    recipient = key.decode("utf-8", "replace") if key is not None else ""
    if not events.USER_ID.fullmatch(recipient):
        raise BadSyncRecordError("the key is not a user id")
    if value is None:
        raise BadSyncRecordError("the record has no value")
    try:
        payload = orjson.loads(value)
    except orjson.JSONDecodeError as exc:  # invalid UTF-8 too
        raise BadSyncRecordError(f"undecodable JSON: {exc}") from None
    if not isinstance(payload, dict) or set(payload) != RECORD_FIELDS:
        raise BadSyncRecordError(f"a record has {', '.join(sorted(RECORD_FIELDS))}")
    if payload["recipient"] != recipient:
        raise BadSyncRecordError("the record's recipient is not its key")
    envelope = events.read(payload["event"])
    if recipient not in envelope["metadata"]["affectedUsers"]:
        raise BadSyncRecordError("the event does not concern the record's recipient")
    todo, visible = payload["todo"], payload["visible"]
    if type(visible) is not bool:
        raise BadSyncRecordError("visible is true or false")
    if todo is not None:
        _check_todo(todo, envelope)
    elif visible:
        raise BadSyncRecordError("a deleted todo is not visible")
    return SyncRecord(partition=partition, offset=offset, user_id=int(recipient),
                      todo_id=uuid.UUID(envelope["aggregateId"]), event_id=uuid.UUID(envelope["eventId"]),
                      version=envelope["aggregateVersion"], visible=visible, todo=todo,
                      text=value.decode() if envelope is payload["event"] else orjson.dumps(
                          {**payload, "event": envelope}).decode())


def _check_todo(todo, envelope: dict) -> None:
    if not isinstance(todo, dict) or set(todo) - {"conflicts"} != set(TODO_FIELDS):
        raise BadSyncRecordError(f"a todo has {', '.join(TODO_FIELDS)} (and conflicts)")
    for name, kind in TODO_FIELDS.items():
        if not isinstance(todo[name], kind) or (kind is int and type(todo[name]) is not int):
            raise BadSyncRecordError(f"the todo's {name} is not a {kind}")
    if todo["id"] != envelope["aggregateId"] or todo["version"] != envelope["aggregateVersion"]:
        raise BadSyncRecordError("the todo is not the event's todo at the event's version")
    if not all(isinstance(moment, str) for moment in todo["reminderTimes"]):
        raise BadSyncRecordError("the todo's reminderTimes are not instants")
    if len(todo["title"]) > 200 or len(todo["description"]) > 10_000 or len(todo["reminderTimes"]) > 10:
        raise BadSyncRecordError("the todo's fields are longer than a todo's")
    _check_conflicts(todo.get("conflicts", []))


def _check_conflicts(conflicts) -> None:
    if not isinstance(conflicts, list) or len(conflicts) > MAX_CONFLICTS:
        raise BadSyncRecordError(f"the todo's conflicts are a list of at most {MAX_CONFLICTS}")
    for conflict in conflicts:
        if not isinstance(conflict, dict) or set(conflict) != CONFLICT_FIELDS:
            raise BadSyncRecordError(f"a conflict has {', '.join(sorted(CONFLICT_FIELDS))}")
        if not isinstance(conflict["conflictId"], str) or not isinstance(conflict["field"], str):
            raise BadSyncRecordError("a conflict's id and field are text")
        values = [conflict[key] for key in ("baseValue", "localValue", "remoteValue")]
        if len(conflict["conflictId"]) > 36 or len(conflict["field"]) > 20 or not all(
                isinstance(value, CONFLICT_VALUE) and (not isinstance(value, str) or len(value) <= 10_000)
                for value in values):
            raise BadSyncRecordError("a conflict's values are text, true/false or null, as a field holds")
