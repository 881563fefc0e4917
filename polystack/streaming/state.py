"""State stores of transactional consumers: Kafka Streams' local state, in the small.

Each input partition a consumer owns has a `PartitionStore`: a key-value map in memory, whose
changes go three ways:

- to a compacted changelog topic, partition for partition with the input, in the same Kafka
  transaction as the consumer's outputs and offsets: the changelog is the store's truth, and a
  crash can never leave it out of step with what was produced;
- to a local SQLite file after that transaction committed, with the changelog offset it
  reflects: a restart reads the file and only the changelog written since;
- into memory, where the handler reads.

Values are JSON (orjson: a busy store writes one changelog record per changed key and batch),
and in memory they stay the bytes of their changelog record: `get` decodes a value of the
caller's own, to change and `set`. Bytes are invisible to Python's cycle collector, which
would otherwise walk every entry of a store of millions at each full collection, and a
restore copies them without decoding. A handler's writes are buffered (`set`, `delete`) until the transaction
commits; an aborted transaction discards them, so the store is always the state after the last
committed batch. Losing the local folder costs a restore from the changelog, nothing else.
"""
import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import orjson

logger = logging.getLogger("polystack.streaming.state")

_DELETED = object()


class PartitionStore:
    def __init__(self, *, changelog: str, partition: int, path: Path | None):
        self.changelog = changelog
        self.partition = partition
        self.path = path
        self.position = 0  # the next changelog offset this store has not applied
        self._data: dict[str, bytes] = {}  # committed values, as their changelog records hold them
        self._dirty: dict[str, Any] = {}  # this batch's writes: values, or _DELETED
        self._db: sqlite3.Connection | None = None

    # --- what a handler uses ----------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        """The value after the last committed batch and this batch's writes so far: the caller's
        own (decoded afresh, or what this batch `set`), to change and `set` again."""
        if key in self._dirty:
            value = self._dirty[key]
            return default if value is _DELETED else value
        raw = self._data.get(key)
        return default if raw is None else orjson.loads(raw)

    def set(self, key: str, value: Any) -> None:
        self._dirty[key] = value

    def delete(self, key: str) -> None:
        self._dirty[key] = _DELETED

    def __len__(self) -> int:
        return len(self._data)

    # --- what the loop uses -----------------------------------------------------------------
    def changes(self) -> list[tuple[bytes, bytes | None]]:
        """This batch's writes as changelog records (a deletion is a tombstone)."""
        return [(key.encode(), None if value is _DELETED else orjson.dumps(value)) for key, value in self._dirty.items()]

    def committed(self, records: list[tuple[bytes, bytes | None]], position: int | None) -> None:
        """The batch's transaction committed with these changelog `records` (from changes()),
        which end before `position`."""
        if not self._dirty:
            return
        for key, value in records:
            if value is None:
                self._data.pop(key.decode(), None)
            else:
                self._data[key.decode()] = value
        self._dirty.clear()
        if position is not None:
            self.position = position
        self._persist(records)

    def discard(self) -> None:
        """The batch's transaction aborted (or the batch is retried): forget its writes."""
        self._dirty.clear()

    def apply_changelog(self, records: list[tuple[bytes, bytes | None, int]]) -> None:
        """Restore: apply (key, value, offset) records read from the changelog."""
        if not records:
            return
        for key, value, _ in records:
            if value is None:
                self._data.pop(key.decode(), None)
            else:
                self._data[key.decode()] = value
        self.position = records[-1][2] + 1
        self._persist(records=[(key, value) for key, value, _ in records])

    # --- the local file -----------------------------------------------------------------------
    def open(self) -> None:
        """Load the local file, if any: the state as of the changelog offset it records."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # a lost tail is read again from the changelog
        self._db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = self._db.execute("SELECT value FROM meta WHERE name = 'changelog'").fetchone()
        if row is None or json.loads(row[0]) != [self.changelog, self.partition]:
            self._reset_file()  # new, or another changelog's: start from the changelog's beginning
            return
        position = self._db.execute("SELECT value FROM meta WHERE name = 'position'").fetchone()
        self.position = int(position[0]) if position else 0
        # Values are BLOBs (files written before that hold TEXT: the same JSON).
        self._data = {key: value if isinstance(value, bytes) else value.encode()
                      for key, value in self._db.execute("SELECT key, value FROM kv")}

    def restart_from_scratch(self) -> None:
        """The local file is ahead of the changelog (the topic was recreated): forget it."""
        self._data.clear()
        self.position = 0
        if self._db is not None:
            self._reset_file()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _reset_file(self) -> None:
        self._db.execute("BEGIN")
        self._db.execute("DELETE FROM kv")
        self._db.execute("DELETE FROM meta")
        self._db.execute("INSERT INTO meta VALUES ('changelog', ?), ('position', '0')",
                         [json.dumps([self.changelog, self.partition])])
        self._db.execute("COMMIT")

    def _persist(self, records: list[tuple[bytes, bytes | None]]) -> None:
        if self._db is None:
            return
        self._db.execute("BEGIN")
        self._db.executemany("DELETE FROM kv WHERE key = ?", [(key.decode(),) for key, value in records if value is None])
        self._db.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)",
                             [(key.decode(), value) for key, value in records if value is not None])
        self._db.execute("UPDATE meta SET value = ? WHERE name = 'position'", [str(self.position)])
        self._db.execute("COMMIT")
