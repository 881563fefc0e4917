"""Read-your-writes without polling the database: the projection NOTIFYs after every batch it
commits, and one listener thread per process wakes the requests waiting for their todo.

A request reads the current generation, checks the table, and if its todo is not there yet
waits for a newer generation: a batch committed between the check and the wait is not
missed. A lost connection only slows waiters down to a re-check every MAX_NAP_S.
"""
import logging
import threading

import psycopg

from polystack import db

logger = logging.getLogger("apps.projections.waiting")

CHANNEL = "projection_applied"
MAX_NAP_S = 0.25


class ProjectionWatcher:
    def __init__(self):
        self._changed = threading.Condition()
        self._generation = 0
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopping = threading.Event()
        self._connection: psycopg.Connection | None = None

    @property
    def generation(self) -> int:
        self._ensure_started()
        return self._generation

    def wait_beyond(self, generation: int, timeout: float) -> None:
        """Return once a batch newer than `generation` was applied, or after the timeout."""
        with self._changed:
            self._changed.wait_for(lambda: self._generation > generation, timeout=min(timeout, MAX_NAP_S))

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._listen, name="projection-watcher", daemon=True)
                    self._thread.start()

    def stop(self) -> None:
        """Close the listening connection (before its database is dropped, in tests)."""
        self._stopping.set()
        if self._connection is not None:
            self._connection.cancel_safe()
        if self._thread is not None:
            self._thread.join(5)
        self._thread, self._connection = None, None
        self._stopping.clear()

    def _listen(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(db.conninfo(), autocommit=True) as conn:
                    self._connection = conn
                    conn.execute(f"LISTEN {CHANNEL}")
                    while not self._stopping.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            with self._changed:
                                self._generation += 1
                                self._changed.notify_all()
            except psycopg.Error as exc:
                if not self._stopping.is_set():
                    logger.warning("projection watcher lost its connection (%s); waiters re-check meanwhile", exc)
                    self._stopping.wait(1.0)


watcher = ProjectionWatcher()
