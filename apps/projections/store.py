"""Writes of the todo projection: apply events idempotently, snapshot, rebuild aside and swap.

All writes go through here in raw SQL over a `Tables` naming, so the live projection and a
rebuild beside it (`*_rebuild` tables, swapped in when complete) run the same code.

Idempotency lives next to the effect: an event applies only when its aggregateVersion is the
todo's version + 1, in the transaction that writes the row, the history and the partition
offsets. A lower version is a duplicate and changes nothing; a higher one is a gap: it is
rejected (the runner parks it in the DLQ and logs it), never applied.
"""
import json
import logging
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from apps.projections import waiting
from apps.todos import events
from polystack.streaming.registry import NonRetriableError

logger = logging.getLogger("apps.projections")

# Live applies hold it shared; a snapshot or the swap of a rebuild hold it exclusively.
LOCK_KEY = 7_361_002
KEEP_SNAPSHOTS = 3


class ProjectionGapError(NonRetriableError):
    """An event whose aggregateVersion skips versions the projection has not seen."""


@dataclass(frozen=True)
class Tables:
    todos: str
    events: str
    offsets: str

    def all(self) -> tuple[str, str, str]:
        return (self.todos, self.events, self.offsets)


LIVE = Tables("projections_todoview", "projections_todoevent", "projections_projectionoffset")
REBUILD = Tables(*(name + "_rebuild" for name in LIVE.all()))

TODO_COLUMNS = (
    "id", "user_id", "title", "description", "priority", "completed", "completed_at",
    "assigned_to", "due_date", "created_at", "updated_at", "deleted_at", "version", "team_id",
)


EVENT_COLUMNS = (
    "event_id", "todo_id", "aggregate_version", "event_type", "occurred_at", "envelope", "partition", '"offset"',
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


def _apply(row: dict | None, envelope: dict) -> dict:
    """The todo after one event. `row` is None only for TodoCreated."""
    data = envelope["data"]
    event_type = envelope["eventType"]
    version = envelope["aggregateVersion"]
    if event_type == events.TODO_CREATED:
        return {
            "id": envelope["aggregateId"], "user_id": int(data["userId"]), "title": data["title"],
            "description": data["description"], "priority": data["priority"], "completed": False,
            "completed_at": None, "assigned_to": None, "due_date": data["dueDate"],
            "created_at": data["createdAt"], "updated_at": data["createdAt"], "deleted_at": None,
            "version": version, "team_id": data["teamId"],
        }
    row = {**row, "version": version}
    if event_type == events.TODO_UPDATED:
        row.update(title=data["title"], description=data["description"], updated_at=data["updatedAt"])
    elif event_type == events.TODO_COMPLETED:
        row.update(completed=True, completed_at=data["completedAt"], updated_at=data["completedAt"])
    elif event_type == events.TODO_DELETED:
        row.update(deleted_at=data["deletedAt"], updated_at=data["deletedAt"])
    elif event_type == events.TODO_ASSIGNED:
        row.update(assigned_to=int(data["assignedTo"]), updated_at=data["assignedAt"])
    elif event_type == events.TODO_PRIORITIZED:
        row.update(priority=data["priority"], updated_at=data["prioritizedAt"])
    else:  # read() lets no unknown type through; this guards a new type without a handler
        raise events.InvalidEventError(f"the projection has no rule for {event_type}")
    return row


SMALL_BATCH = 50  # events; larger batches (replay, catching up) go through COPY
_TODO_CONFLICT = "ON CONFLICT (id) DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in TODO_COLUMNS[1:])


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
        (tables.todos, "projection_stage_todos", TODO_COLUMNS, todo_rows, _TODO_CONFLICT),
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


def _write_positions(cursor, tables: Tables, positions: dict, *, live: bool, applied: int, changed: dict) -> None:
    """The partitions' next offsets, in the batch's transaction; then, live, the periodic
    snapshot and the NOTIFY that wakes read-your-writes waiters of the changed todos."""
    cursor.executemany(
        f"INSERT INTO {tables.offsets} (topic, partition, next_offset) VALUES (%s, %s, %s) "
        f"ON CONFLICT (topic, partition) DO UPDATE SET next_offset = "
        f"GREATEST({tables.offsets}.next_offset, EXCLUDED.next_offset)",
        [(topic, partition, offset) for (topic, partition), offset in positions.items()],
    )
    if live:
        _maybe_snapshot(cursor, applied=applied)
    if live and changed:
        # Wakes the read-your-writes waiters of these todos (see waiting.py).
        named = ",".join(changed) if len(changed) <= waiting.MAX_NAMED_TODOS else waiting.ANY_TODO
        cursor.execute("SELECT pg_notify(%s, %s)", [waiting.CHANNEL, named])


def apply_items(*, tables: Tables, items: list[Item], live: bool = True) -> list[tuple[Item, NonRetriableError]]:
    """Apply a batch in one transaction; return the rejected items with their reasons."""
    if not items:
        return []
    rejected: list[tuple[Item, NonRetriableError]] = []
    with transaction.atomic(), connection.cursor() as cursor:
        with _pipeline():  # BEGIN, the lock and the read: one round trip
            if live:
                cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [LOCK_KEY])
            # The ids as one array literal (validated UUIDs): cheaper than the driver quoting a list.
            ids = "{" + ",".join({item.envelope["aggregateId"] for item in items}) + "}"
            cursor.execute(f"SELECT {', '.join(TODO_COLUMNS)} FROM {tables.todos} WHERE id = ANY(%s::uuid[]) FOR UPDATE",
                           [ids])
            state = {str(values[0]): dict(zip(TODO_COLUMNS, values)) for values in cursor.fetchall()}
        changed: dict[str, dict] = {}
        history: list[tuple] = []
        for item in items:
            envelope = item.envelope
            todo_id = envelope["aggregateId"]
            row = state.get(todo_id)
            current = row["version"] if row else 0
            version = envelope["aggregateVersion"]
            if version <= current:
                continue  # a duplicate: already applied
            if version != current + 1 or (row is None) != (envelope["eventType"] == events.TODO_CREATED):
                error = ProjectionGapError(
                    f"todo {todo_id}: {envelope['eventType']} v{version} does not follow v{current}"
                )
                logger.error("projection gap: %s eventId=%s correlationId=%s", error, envelope["eventId"],
                             envelope["correlationId"])
                rejected.append((item, error))
                continue
            try:
                state[todo_id] = changed[todo_id] = _apply(row, envelope)
            except (ValueError, events.InvalidEventError) as exc:
                rejected.append((item, events.InvalidEventError(str(exc))))
                continue
            history.append((envelope["eventId"], todo_id, version, envelope["eventType"], envelope["occurredAt"],
                            item.json, item.partition, item.offset))
        positions: dict[tuple[str, int], int] = {}
        for item in items:
            key = (item.topic, item.partition)
            positions[key] = max(positions.get(key, 0), item.offset + 1)
        todo_rows = [[row[c] for c in TODO_COLUMNS] for row in changed.values()]
        if len(history) <= SMALL_BATCH:
            # The trickle of a live projection: every write of the batch in one round trip.
            with _pipeline():
                _upsert_values(cursor, _writes(tables, todo_rows, history))
                _write_positions(cursor, tables, positions, live=live, applied=len(history), changed=changed)
        else:
            _upsert_staged(cursor, _writes(tables, todo_rows, history))
            _write_positions(cursor, tables, positions, live=live, applied=len(history), changed=changed)
    return rejected


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


_applied_since_check = 0


def _maybe_snapshot(cursor, *, applied: int) -> None:
    """Take the periodic snapshot once PROJECTION_SNAPSHOT_EVERY events were applied since the
    last one. Looked at once per 1% of that many events this process applied, not every batch:
    the look costs two queries, and a batch of a live projection is often one event."""
    global _applied_since_check
    every = settings.PROJECTION_SNAPSHOT_EVERY
    if every <= 0:
        return
    _applied_since_check += applied
    if _applied_since_check < max(1, every // 100):
        return
    _applied_since_check = 0
    cursor.execute(f"SELECT coalesce(sum(next_offset), 0) FROM {LIVE.offsets}")
    position = cursor.fetchone()[0]
    cursor.execute("SELECT offsets FROM projections_snapshot ORDER BY id DESC LIMIT 1")
    last = cursor.fetchone()
    last_position = sum(_json(last[0]).values()) if last else 0
    if position - last_position >= every:
        _write_snapshot(cursor, reason="periodic")


def _write_snapshot(cursor, *, reason: str) -> int:
    cursor.execute(f"SELECT topic, partition, next_offset FROM {LIVE.offsets}")
    positions = {(t, p): o for t, p, o in cursor.fetchall()}
    cursor.execute(
        "INSERT INTO projections_snapshot (created_at, offsets, todo_count, event_count, reason) "
        f"VALUES (now(), %s::jsonb, (SELECT count(*) FROM {LIVE.todos}), (SELECT count(*) FROM {LIVE.events}), %s) "
        "RETURNING id",
        [_offsets_json(positions), reason],
    )
    snapshot_id = cursor.fetchone()[0]
    cursor.execute(f"INSERT INTO projections_snapshottodo (snapshot_id, row) SELECT %s, to_jsonb(t) FROM {LIVE.todos} t",
                   [snapshot_id])
    cursor.execute(f"INSERT INTO projections_snapshotevent (snapshot_id, row) SELECT %s, to_jsonb(e) FROM {LIVE.events} e",
                   [snapshot_id])
    cursor.execute("DELETE FROM projections_snapshot WHERE id NOT IN "
                   "(SELECT id FROM projections_snapshot ORDER BY id DESC LIMIT %s)", [KEEP_SNAPSHOTS])
    logger.info("snapshot %s taken (%s) at %s", snapshot_id, reason, _offsets_json(positions))
    return snapshot_id


def take_snapshot(*, reason: str = "on demand") -> int:
    """Copy the live projection and its offsets, consistently (live applies wait meanwhile)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
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
        cursor.execute(f"INSERT INTO {REBUILD.todos} SELECT (jsonb_populate_record(NULL::{LIVE.todos}, row)).* "
                       "FROM projections_snapshottodo WHERE snapshot_id = %s", [snapshot_id])
        cursor.execute(f"INSERT INTO {REBUILD.events} SELECT (jsonb_populate_record(NULL::{LIVE.events}, row)).* "
                       "FROM projections_snapshotevent WHERE snapshot_id = %s", [snapshot_id])
        cursor.execute("SELECT offsets FROM projections_snapshot WHERE id = %s", [snapshot_id])
        positions = _parse_offsets(_json(cursor.fetchone()[0]))
        cursor.executemany(f"INSERT INTO {REBUILD.offsets} (topic, partition, next_offset) VALUES (%s, %s, %s)",
                           [(t, p, o) for (t, p), o in positions.items()])
        return positions


def swap_in_rebuild(cursor) -> None:
    """Replace the live tables by the rebuilt ones. Call inside a transaction that holds the
    exclusive LOCK_KEY: readers see the old tables until commit, then the new ones."""
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

