"""Writes of the todo projection: apply events idempotently, snapshot, rebuild aside and swap.

All writes go through here in raw SQL over a `Tables` naming, so the live projection and a
rebuild beside it (`*_rebuild` tables, swapped in when complete) run the same code.

Idempotency lives next to the effect: an event applies only when its aggregateVersion is the
todo's version + 1, in the transaction that writes the row, the history and the partition
offsets. A lower version is a duplicate and changes nothing. A higher one is a gap: the event
is parked (`*_parkedevent`, same transaction) and applies when the missing version arrives.
Only what can never apply is rejected to the DLQ (a TodoCreated that is not version 1, a first
event that is not a TodoCreated). Every write of a todo row is also conditional on the version
it replaces, so a second applier (a zombie consumer, a replay racing the live one) can never
put an older version back.
"""
import json
import logging
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from apps.projections import waiting
from apps.projections.models import (ParkedEvent, ProjectionOffset, Snapshot, SnapshotEvent, SnapshotParked,
                                     SnapshotTodo, TodoEvent, TodoView)
from apps.todos import events
from polystack import db
from polystack.streaming.registry import NonRetriableError

logger = logging.getLogger("apps.projections")

# db.AdvisoryLock.PROJECTION: live applies hold it shared; a snapshot or the swap of a rebuild
# hold it exclusively.
KEEP_SNAPSHOTS = 3


class ImpossibleVersionError(NonRetriableError):
    """An event that can never apply whatever arrives later: a TodoCreated that is not version 1,
    or a version 1 that is not a TodoCreated."""


@dataclass(frozen=True)
class Tables:
    todos: str
    events: str
    offsets: str
    parked: str

    def all(self) -> tuple[str, ...]:
        return (self.todos, self.events, self.offsets, self.parked)

    def snapshotted(self) -> tuple[str, str, str]:
        """The tables a snapshot copies row by row, in the order of SNAPSHOT_COPIES (the offsets
        go into the snapshot's own row)."""
        return (self.todos, self.events, self.parked)


LIVE = Tables(TodoView._meta.db_table, TodoEvent._meta.db_table, ProjectionOffset._meta.db_table,
              ParkedEvent._meta.db_table)
SNAPSHOT = Snapshot._meta.db_table
SNAPSHOT_COPIES = (SnapshotTodo._meta.db_table, SnapshotEvent._meta.db_table, SnapshotParked._meta.db_table)

REBUILD = Tables(*(name + "_rebuild" for name in LIVE.all()))

TODO_COLUMNS = (
    "id", "user_id", "title", "description", "priority", "completed", "completed_at",
    "assigned_to", "due_date", "created_at", "updated_at", "deleted_at", "version", "team_id", "reminder_times",
)


EVENT_COLUMNS = (
    "event_id", "todo_id", "aggregate_version", "event_type", "occurred_at", "envelope", "partition", '"offset"',
)
PARKED_COLUMNS = (
    "event_id", "todo_id", "aggregate_version", "envelope", "topic", "partition", '"offset"', "parked_at", "reason",
)


_staged_connections: "weakref.WeakSet" = weakref.WeakSet()


def _create_staging(cursor) -> None:
    """Session-local staging tables, emptied at every commit; created once per connection."""
    if connection.connection in _staged_connections:
        return
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS projection_stage_todos (LIKE {LIVE.todos} INCLUDING DEFAULTS) "
        "ON COMMIT DELETE ROWS"
    )
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS projection_stage_events (LIKE {LIVE.events} INCLUDING DEFAULTS) "
        "ON COMMIT DELETE ROWS"
    )
    raw = connection.connection
    # Only once the creating transaction committed: a rollback takes the tables with it.
    transaction.on_commit(lambda: _staged_connections.add(raw))


@dataclass
class Item:
    """One decoded, upcast event with where it came from."""

    envelope: dict
    json: str  # the envelope as stored in the history
    topic: str
    partition: int
    offset: int
    source: Any = None  # what the caller wants back with a rejection (the Kafka message)


def apply_event(row: dict | None, envelope: dict) -> dict:
    """The read row of a todo after one event (pure: the fold every write of the projection
    uses). `row` is None only for TodoCreated."""
    data = envelope["data"]
    event_type = envelope["eventType"]
    version = envelope["aggregateVersion"]
    if event_type == events.TODO_CREATED:
        return {
            "id": envelope["aggregateId"], "user_id": int(data["userId"]), "title": data["title"],
            "description": data["description"], "priority": data["priority"], "completed": False,
            "completed_at": None, "assigned_to": None, "due_date": data["dueDate"],
            "created_at": data["createdAt"], "updated_at": data["createdAt"], "deleted_at": None,
            "version": version, "team_id": data["teamId"], "reminder_times": [],
        }
    row = {**row, "version": version}
    if event_type == events.TODO_UPDATED:
        row.update(title=data["title"], description=data["description"], updated_at=data["updatedAt"])
    elif event_type == events.TODO_COMPLETED:
        row.update(completed=True, completed_at=data["completedAt"], updated_at=data["completedAt"])
    elif event_type == events.TODO_DELETED:
        row.update(deleted_at=data["deletedAt"], updated_at=data["deletedAt"])
    elif event_type == events.TODO_ASSIGNED:
        assignee = data["assignedTo"]  # None: unassigned
        row.update(assigned_to=int(assignee) if assignee else None, updated_at=data["assignedAt"])
    elif event_type == events.TODO_PRIORITIZED:
        row.update(priority=data["priority"], updated_at=data["prioritizedAt"])
    elif event_type == events.TODO_SCHEDULED:
        # Instants, as a read of the row gives them back (a list of strings is no timestamptz[]).
        row.update(due_date=data["dueDate"], updated_at=data["scheduledAt"],
                   reminder_times=[datetime.fromisoformat(moment) for moment in data["reminderTimes"]])
    elif event_type in (events.TODO_CONFLICT_DETECTED, events.TODO_CONFLICT_RESOLVED):
        pass  # a step of the todo's history that changes no field (a resolution's value has its own event)
    else:  # read() lets no unknown type through; this guards a new type without a handler
        raise events.InvalidEventError(f"the projection has no rule for {event_type}")
    return row


SMALL_BATCH = 50  # events; larger batches (replay, catching up) go through COPY


@cache
def _todo_conflict(table: str) -> str:
    """The todo upsert: a row is only ever replaced by a newer version of itself."""
    return ("ON CONFLICT (id) DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in TODO_COLUMNS[1:])
            + f" WHERE {table}.version < EXCLUDED.version")


@contextmanager
def _pipeline():
    """psycopg's pipeline mode: statements go out without waiting for each answer; a fetch,
    or the end of the block, waits for them all. Not for COPY."""
    connection.ensure_connection()
    with connection.connection.pipeline():
        yield


def _values(columns: tuple[str, ...], count: int) -> str:
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    return ", ".join([row] * count)


def _writes(tables: Tables, todo_rows: list[list], history: list[tuple]) -> tuple:
    """(table, staging table, columns, rows, ON CONFLICT clause) of the two upserts of a batch."""
    return (
        (tables.todos, "projection_stage_todos", TODO_COLUMNS, todo_rows, _todo_conflict(tables.todos)),
        (tables.events, "projection_stage_events", EVENT_COLUMNS, history, "ON CONFLICT DO NOTHING"),
    )


def _upsert_values(cursor, writes: tuple) -> None:
    """Few rows: plain multi-row INSERTs (pipelined by the caller)."""
    for table, _, columns, rows, conflict in writes:
        if rows:
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES {_values(columns, len(rows))} {conflict}",
                [value for row in rows for value in row],
            )


def _upsert_staged(cursor, writes: tuple) -> None:
    """Many rows: COPY into session-local staging tables, then one set-based upsert each:
    several times faster than row-by-row INSERTs (see `make bench`)."""
    _create_staging(cursor)
    for table, staging, columns, rows, conflict in writes:
        if rows:
            names = ", ".join(columns)
            with cursor.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} {conflict}")


def _write_positions(cursor, tables: Tables, positions: dict, *, live: bool, changed: dict) -> None:
    """The partitions' next offsets, in the batch's transaction; then, live, the NOTIFY that
    wakes read-your-writes waiters of the changed todos."""
    cursor.executemany(
        f"INSERT INTO {tables.offsets} (topic, partition, next_offset) VALUES (%s, %s, %s) "
        f"ON CONFLICT (topic, partition) DO UPDATE SET next_offset = "
        f"GREATEST({tables.offsets}.next_offset, EXCLUDED.next_offset)",
        [(topic, partition, offset) for (topic, partition), offset in positions.items()],
    )
    if live and changed:
        # Wakes the read-your-writes waiters of these todos (see waiting.py).
        named = ",".join(changed) if len(changed) <= waiting.MAX_NAMED_TODOS else waiting.ANY_TODO
        cursor.execute("SELECT pg_notify(%s, %s)", [waiting.CHANNEL, named])


class _Batch:
    """The decisions of one batch over the locked state: what applies, what parks, what goes."""

    def __init__(self, state: dict[str, dict], parked: list[tuple]):
        self.state = state
        self.changed: dict[str, dict] = {}
        self.history: list[tuple] = []
        self.rejected: list[tuple[Item, NonRetriableError]] = []
        self.waiting: dict[tuple[str, int], list[Item]] = {}  # (todo, version) -> parked items
        self.unparked: list[str] = []  # event ids of parked rows that applied (or were duplicates)
        self.to_park: dict[str, tuple[Item, str]] = {}
        for event_id, envelope, topic, partition, offset in parked:
            envelope = _json(envelope)
            item = Item(envelope, json.dumps(envelope), topic, partition, offset)
            self.waiting.setdefault((envelope["aggregateId"], envelope["aggregateVersion"]), []).append(item)

    def take(self, item: Item) -> None:
        """Apply, skip, park or reject one event; after an apply, the parked events it
        was holding up follow."""
        while item is not None and self._take_one(item):
            envelope = item.envelope
            item = self._unpark(envelope["aggregateId"], envelope["aggregateVersion"])

    def _take_one(self, item: Item) -> bool:
        """True when the event applied."""
        envelope = item.envelope
        todo_id, version = envelope["aggregateId"], envelope["aggregateVersion"]
        created = envelope["eventType"] == events.TODO_CREATED
        if created != (version == 1):
            self.rejected.append((item, ImpossibleVersionError(
                f"todo {todo_id}: {envelope['eventType']} v{version} can never apply "
                "(a todo starts with TodoCreated v1, and only there)")))
            return False
        row = self.state.get(todo_id)
        current = row["version"] if row else 0
        if version <= current:
            return False  # a duplicate: already applied
        if version > current + 1:
            reason = f"waits for v{current + 1} (the projection has v{current})"
            logger.warning("projection parks %s v%s: %s eventId=%s correlationId=%s", todo_id, version, reason,
                           envelope["eventId"], envelope["correlationId"])
            self.waiting.setdefault((todo_id, version), []).append(item)
            self.to_park[envelope["eventId"]] = (item, reason)
            return False
        try:
            self.state[todo_id] = self.changed[todo_id] = apply_event(row, envelope)
        except (ValueError, events.InvalidEventError) as exc:
            self.rejected.append((item, events.InvalidEventError(str(exc))))
            return False
        self.history.append((envelope["eventId"], todo_id, version, envelope["eventType"], envelope["occurredAt"],
                             item.json, item.partition, item.offset))
        self._spend(todo_id, version)  # parked copies of this version are spent
        return True

    def _spend(self, todo_id: str, version: int) -> list[Item]:
        """Remove what was parked at this version of the todo; return it, oldest first."""
        candidates = sorted(self.waiting.pop((todo_id, version), ()), key=lambda item: (item.partition, item.offset))
        for item in candidates:
            event_id = item.envelope["eventId"]
            if self.to_park.pop(event_id, None) is None:
                self.unparked.append(event_id)  # parked in an earlier batch: its row goes
        return candidates

    def _unpark(self, todo_id: str, version: int) -> Item | None:
        """The parked event at the todo's next version, if any (the first to arrive, by
        position, when several claim it)."""
        candidates = self._spend(todo_id, version + 1)
        if candidates:
            logger.info("projection unparks %s v%s", todo_id, version + 1)
        return candidates[0] if candidates else None

    def park_rows(self) -> list[tuple]:
        now = timezone.now()
        return [(event_id, item.envelope["aggregateId"], item.envelope["aggregateVersion"], item.json, item.topic,
                 item.partition, item.offset, now, reason) for event_id, (item, reason) in self.to_park.items()]


def apply_items(*, tables: Tables, items: list[Item], live: bool = True) -> list[tuple[Item, NonRetriableError]]:
    """Apply a batch in one transaction; return the rejected items with their reasons."""
    if not items:
        return []
    with transaction.atomic(), connection.cursor() as cursor:
        with _pipeline():  # BEGIN, the lock and the reads: one round trip
            if live:
                cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [db.AdvisoryLock.PROJECTION])
            # The ids as one array literal (validated UUIDs): cheaper than the driver quoting a list.
            ids = "{" + ",".join({item.envelope["aggregateId"] for item in items}) + "}"
            cursor.execute(f"SELECT {', '.join(TODO_COLUMNS)} FROM {tables.todos} WHERE id = ANY(%s::uuid[]) FOR UPDATE",
                           [ids])
            state = {str(values[0]): dict(zip(TODO_COLUMNS, values)) for values in cursor.fetchall()}
            cursor.execute(f'SELECT event_id, envelope, topic, partition, "offset" FROM {tables.parked} '
                           "WHERE todo_id = ANY(%s::uuid[]) FOR UPDATE", [ids])
            batch = _Batch(state, cursor.fetchall())
        for item in items:
            batch.take(item)
        positions: dict[tuple[str, int], int] = {}
        for item in items:
            key = (item.topic, item.partition)
            positions[key] = max(positions.get(key, 0), item.offset + 1)
        changed, history = batch.changed, batch.history
        todo_rows = [[row[c] for c in TODO_COLUMNS] for row in changed.values()]
        if len(history) <= SMALL_BATCH:
            # The trickle of a live projection: every write of the batch in one round trip.
            with _pipeline():
                _upsert_values(cursor, _writes(tables, todo_rows, history))
                _write_parked(cursor, tables, batch)
                _write_positions(cursor, tables, positions, live=live, changed=changed)
        else:
            _upsert_staged(cursor, _writes(tables, todo_rows, history))
            _write_parked(cursor, tables, batch)
            _write_positions(cursor, tables, positions, live=live, changed=changed)
    for item, error in batch.rejected:
        logger.error("projection rejects %s eventId=%s correlationId=%s", error, item.envelope["eventId"],
                     item.envelope["correlationId"])
    return batch.rejected


def _write_parked(cursor, tables: Tables, batch: _Batch) -> None:
    """Park what waits (few rows, whatever the batch: plain INSERTs) and delete what applied."""
    _upsert_values(cursor, ((tables.parked, None, PARKED_COLUMNS, batch.park_rows(), "ON CONFLICT DO NOTHING"),))
    if batch.unparked:
        cursor.execute(f"DELETE FROM {tables.parked} WHERE event_id = ANY(%s::uuid[])",
                       ["{" + ",".join(batch.unparked) + "}"])


def parked_count(*, tables: Tables = LIVE) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {tables.parked}")
        return cursor.fetchone()[0]


def parked_summary(*, tables: Tables = LIVE, limit: int = 5) -> list[str]:
    """A line for each of the first parked events: which todo and version, and what it waits for."""
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT todo_id, aggregate_version, reason, topic, partition, "offset" FROM {tables.parked} '
                       'ORDER BY partition, "offset" LIMIT %s', [limit])
        return [f"todo {todo} v{version} at {topic}[{partition}]@{offset} {reason}"
                for todo, version, reason, topic, partition, offset in cursor.fetchall()]


def offsets(*, tables: Tables = LIVE) -> dict[tuple[str, int], int]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT topic, partition, next_offset FROM {tables.offsets}")
        return {(topic, partition): offset for topic, partition, offset in cursor.fetchall()}


# --- snapshots ----------------------------------------------------------------------------
def _offsets_json(positions: dict[tuple[str, int], int]) -> str:
    return json.dumps({f"{topic}:{partition}": offset for (topic, partition), offset in sorted(positions.items())})


def _json(raw: str | dict) -> dict:
    """jsonb from a raw cursor: Django's psycopg setup hands it over as text."""
    return json.loads(raw) if isinstance(raw, str) else raw


def _parse_offsets(raw: dict) -> dict[tuple[str, int], int]:
    result = {}
    for key, offset in raw.items():
        topic, _, partition = key.rpartition(":")
        result[(topic, int(partition))] = offset
    return result


def snapshot_check_every() -> int:
    """How many applied events between two looks at whether a periodic snapshot is due (0: never):
    1% of PROJECTION_SNAPSHOT_EVERY, not every batch, since the look costs two queries and a
    batch of a live projection is often one event."""
    every = settings.PROJECTION_SNAPSHOT_EVERY
    return 0 if every <= 0 else max(1, every // 100)


def snapshot_if_due() -> None:
    """Take the periodic snapshot when PROJECTION_SNAPSHOT_EVERY events were applied since the
    last one.

    Called after a batch committed, never inside its transaction: a snapshot is its own
    transaction (it waits for the shared lock of live applies), and a failed snapshot is
    logged without undoing, or retrying, the batch that happened to trigger it."""
    every = settings.PROJECTION_SNAPSHOT_EVERY
    if every <= 0 or connection.in_atomic_block:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT coalesce(sum(next_offset), 0) FROM {LIVE.offsets}")
            position = cursor.fetchone()[0]
            cursor.execute(f"SELECT offsets FROM {SNAPSHOT} ORDER BY id DESC LIMIT 1")
            last = cursor.fetchone()
        if position - (sum(_json(last[0]).values()) if last else 0) >= every:
            take_snapshot(reason="periodic")
    except DatabaseError:
        logger.exception("periodic snapshot failed; the projection goes on and tries again later")


def _write_snapshot(cursor, *, reason: str) -> int:
    cursor.execute(f"SELECT topic, partition, next_offset FROM {LIVE.offsets}")
    positions = {(t, p): o for t, p, o in cursor.fetchall()}
    cursor.execute(
        f"INSERT INTO {SNAPSHOT} (created_at, offsets, todo_count, event_count, reason) "
        f"VALUES (now(), %s::jsonb, (SELECT count(*) FROM {LIVE.todos}), (SELECT count(*) FROM {LIVE.events}), %s) "
        "RETURNING id",
        [_offsets_json(positions), reason],
    )
    snapshot_id = cursor.fetchone()[0]
    for table, copy in zip(LIVE.snapshotted(), SNAPSHOT_COPIES, strict=True):
        cursor.execute(f"INSERT INTO {copy} (snapshot_id, row) SELECT %s, to_jsonb(t) FROM {table} t", [snapshot_id])
    _prune_snapshots(cursor)
    logger.info("snapshot %s taken (%s) at %s", snapshot_id, reason, _offsets_json(positions))
    return snapshot_id


def _prune_snapshots(cursor) -> None:
    """Keep the newest KEEP_SNAPSHOTS. The copies' foreign keys have no cascade in the
    database (Django cascades in Python), so the copies go first."""
    cursor.execute(f"SELECT array_agg(id) FROM (SELECT id FROM {SNAPSHOT} ORDER BY id DESC OFFSET %s) old",
                   [KEEP_SNAPSHOTS])
    old = cursor.fetchone()[0]
    if old:
        for table in SNAPSHOT_COPIES:
            cursor.execute(f"DELETE FROM {table} WHERE snapshot_id = ANY(%s)", [old])
        cursor.execute(f"DELETE FROM {SNAPSHOT} WHERE id = ANY(%s)", [old])


def take_snapshot(*, reason: str = "on demand") -> int:
    """Copy the live projection and its offsets, consistently (live applies wait meanwhile)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [db.AdvisoryLock.PROJECTION])
        return _write_snapshot(cursor, reason=reason)


# --- rebuild aside and swap ---------------------------------------------------------------
def prepare_rebuild(*, snapshot_id: int | None) -> dict[tuple[str, int], int]:
    """Create empty rebuild tables shaped like the live ones, filled from a snapshot if given.
    Returns the offsets to consume from (empty: from the beginning)."""
    with transaction.atomic(), connection.cursor() as cursor:
        for live, rebuild in zip(LIVE.all(), REBUILD.all()):
            cursor.execute(f"DROP TABLE IF EXISTS {rebuild}")
            cursor.execute(f"CREATE TABLE {rebuild} (LIKE {live} INCLUDING ALL)")
        if snapshot_id is None:
            return {}
        for live, rebuild, copy in zip(LIVE.snapshotted(), REBUILD.snapshotted(), SNAPSHOT_COPIES, strict=True):
            cursor.execute(f"INSERT INTO {rebuild} SELECT (jsonb_populate_record(NULL::{live}, row)).* "
                           f"FROM {copy} WHERE snapshot_id = %s", [snapshot_id])
        cursor.execute(f"SELECT offsets FROM {SNAPSHOT} WHERE id = %s", [snapshot_id])
        positions = _parse_offsets(_json(cursor.fetchone()[0]))
        cursor.executemany(f"INSERT INTO {REBUILD.offsets} (topic, partition, next_offset) VALUES (%s, %s, %s)",
                           [(t, p, o) for (t, p), o in positions.items()])
        return positions


def swap_in_rebuild(cursor) -> None:
    """Replace the live tables by the rebuilt ones. Call inside a transaction that holds the
    exclusive AdvisoryLock.PROJECTION: readers see the old tables until commit, then the new ones."""
    for live, rebuild in zip(LIVE.all(), REBUILD.all()):
        names = _index_names(cursor, live)
        cursor.execute(f"ALTER TABLE {live} RENAME TO {live}_old")
        cursor.execute(f"ALTER TABLE {rebuild} RENAME TO {live}")
        cursor.execute(f"DROP TABLE {live}_old")
        # CREATE TABLE LIKE named the indexes after the rebuild table: give back the names
        # Django's migrations created, so later migrations find them.
        for name, definition in _index_definitions(cursor, live):
            original = names.get(definition)
            if original and original != name:
                cursor.execute(f'ALTER INDEX "{name}" RENAME TO "{original}"')


def _index_definitions(cursor, table: str) -> list[tuple[str, str]]:
    """(index name, definition without the name) of a table's indexes."""
    cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
    return [(name, definition.replace(f" {name} ON ", " ON ", 1)) for name, definition in cursor.fetchall()]


def _index_names(cursor, table: str) -> dict[str, str]:
    return {definition: name for name, definition in _index_definitions(cursor, table)}


def checksum(*, tables: Tables = LIVE) -> str:
    """A fingerprint of the read tables' content, to compare a rebuild with the live state."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) FROM {tables.todos} t"
        )
        todos = cursor.fetchone()[0]
        cursor.execute(
            f"SELECT md5(coalesce(string_agg(concat_ws(',', e.event_id, e.todo_id, e.aggregate_version, e.event_type, "
            f"e.occurred_at, e.envelope::text), '|' ORDER BY e.event_id), '')) FROM {tables.events} e"
        )
        return f"{todos}:{cursor.fetchone()[0]}"

