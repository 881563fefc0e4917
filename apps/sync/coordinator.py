"""The sync coordinator: todo-events → device-sync-events, each event once per recipient,
exactly once.

    todo-events ──read──▶ event ──fold (state: each todo)──▶ todo after it
        ──▶ one record per user in metadata.affectedUsers ──▶ device-sync-events, keyed by that user

A user's records — their own todos, their team's, those assigned to them — all land in the
partition of their key: one stream, in one order, and a device's position in it is one offset.
Each record carries the event and the whole todo after it (`todo`, null once deleted) and
whether its recipient still sees the todo (`visible`: not when the event took it from them), so
a device applies a record by replacing its copy with a newer version. It folds nothing, and a
device that starts to see a todo midway (it was assigned to its user) gets it whole.

It runs as a transactional consumer (polystack.streaming.transactional): per batch, the
records, the dead letters, the state store's changes and the input offsets commit in one Kafka
transaction, so a crash anywhere leaves either all of a batch's records or none (readers read
`read_committed`). The state store holds each todo's last row (the projection's fold,
apps.projections.services.apply_event), restored from its changelog after a crash.
"""
from datetime import datetime

import orjson

from apps.projections.services import apply_event
from apps.todos import events
from polystack.streaming import topics
from polystack.streaming.registry import NonRetriableError
from polystack.streaming.transactional import Batch


class UnsyncableEventError(NonRetriableError):
    """A valid todo event that does not continue its todo's history: a version after a gap,
    an event of a todo never created, or after its deletion."""


DOCUMENT_FIELDS = (("id", "id"), ("title", "title"), ("description", "description"), ("priority", "priority"),
                   ("completed", "completed"), ("completedAt", "completed_at"), ("assignedTo", "assigned_to"),
                   ("userId", "user_id"), ("dueDate", "due_date"), ("reminderTimes", "reminder_times"),
                   ("teamId", "team_id"), ("createdAt", "created_at"), ("updatedAt", "updated_at"),
                   ("version", "version"))


MAX_OPEN_CONFLICTS = 50  # per todo, the newest: a flood of forged events cannot grow the state without end


def document(row: dict) -> dict:
    """A todo as devices hold it: the REST API's shape (camelCase, ids as strings), and its open
    conflicts, so that every device shows both values of each."""
    doc = {name: row[column] for name, column in DOCUMENT_FIELDS}
    doc["assignedTo"] = None if row["assigned_to"] is None else str(row["assigned_to"])
    doc["userId"] = str(row["user_id"])
    doc["conflicts"] = row.get("conflicts", [])
    return doc


def fold(row: dict | None, envelope: dict) -> dict:
    """The todo's row after `envelope`, as the state store keeps it (JSON: instants as text):
    the projection's fold, and the open conflicts."""
    after = apply_event(row, envelope)
    after["reminder_times"] = [events.iso(moment) if isinstance(moment, datetime) else moment
                               for moment in after["reminder_times"]]
    data = envelope["data"]
    if envelope["eventType"] == events.TODO_CONFLICT_DETECTED:
        conflict = {key: data[key] for key in ("conflictId", "field", "baseValue", "localValue", "remoteValue")}
        others = [c for c in after.get("conflicts", []) if c["conflictId"] != conflict["conflictId"]]  # updated
        after["conflicts"] = [*others, conflict][-MAX_OPEN_CONFLICTS:]
    elif envelope["eventType"] == events.TODO_CONFLICT_RESOLVED:
        after["conflicts"] = [c for c in after.get("conflicts", []) if c["conflictId"] != data["conflictId"]]
    return after


class SyncCoordinator:
    """Turns each todo event into one device-sync record per recipient, with the todo after it, exactly once."""

    def process(self, batch: Batch) -> None:
        for message in batch.messages:
            try:
                envelope = events.read(message.payload)
                store = batch.stores[message.partition]
                key = f"todo:{envelope['aggregateId']}"
                version = envelope["aggregateVersion"]
                before = store.get(key)
                if before is not None and version <= before["version"]:
                    continue  # delivered before: its records went with it
                row = self._next(before, envelope)
            except NonRetriableError as exc:
                batch.reject(message, exc)
                continue
            gone = row["deleted_at"] is not None
            # A deleted todo's entry shrinks to what recognises its late duplicates.
            store.set(key, {"version": row["version"], "deleted_at": row["deleted_at"]} if gone else row)
            todo = None if gone else document(row)
            former = set(envelope["metadata"].get("formerUsers", ()))
            for recipient in envelope["metadata"]["affectedUsers"]:
                batch.send(topics.DEVICE_SYNC_EVENTS, key=recipient, value=orjson.dumps(
                    {"recipient": recipient, "visible": not gone and recipient not in former, "todo": todo,
                     "event": envelope}))

    @staticmethod
    def _next(before: dict | None, envelope: dict) -> dict:
        version = envelope["aggregateVersion"]
        if envelope["eventType"] == events.TODO_CREATED:
            if before is not None or version != 1:
                raise UnsyncableEventError(f"TodoCreated at version {version}: a todo begins at version 1, once")
            return fold(None, envelope)
        if before is None:
            raise UnsyncableEventError(f"{envelope['eventType']} of todo {envelope['aggregateId']}, never created")
        if version != before["version"] + 1:
            raise UnsyncableEventError(f"version {version} of todo {envelope['aggregateId']} after version "
                                       f"{before['version']}: versions between are missing")
        if before["deleted_at"] is not None:
            raise UnsyncableEventError(f"{envelope['eventType']} of todo {envelope['aggregateId']} after its deletion")
        return fold(before, envelope)
