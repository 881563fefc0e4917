"""Waiting for the projection without polling the database: the projection NOTIFYs after every
batch it commits, naming the todos it changed, and one listener thread per process wakes
whoever waits: threads (`wait_for`, read-your-writes of a request) and coroutines (`next_batch`,
a socket's catch-up).

A request reads the current generation, checks the table, and if its todo is not there yet
waits for a newer batch that names it (or names no todos: "*", a large batch): a batch
committed between the check and the wait is not missed. A lost connection only slows
waiters down to a re-check every MAX_NAP_S.
"""
import asyncio
import collections
import logging
import threading

import psycopg

from polystack import db

logger = logging.getLogger("apps.projections.waiting")

CHANNEL = "projection_applied"
MAX_NAP_S = 0.25
ANY_TODO = "*"
MAX_NAMED_TODOS = 200  # a NOTIFY payload holds 8000 bytes; larger batches say ANY_TODO


class ProjectionWatcher:
    def __init__(self):
        self._changed = threading.Condition()
        self._generation = 0
        self._recent: collections.deque[tuple[int, frozenset[str] | None]] = collections.deque(maxlen=1000)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopping = threading.Event()
        self._connection: psycopg.Connection | None = None
        self._sleepers: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []

    @property
    def generation(self) -> int:
        self._ensure_started()
        return self._generation

    def wait_for(self, todo_id: str, *, beyond: int, timeout: float) -> None:
        """Return once a batch newer than generation `beyond` changed `todo_id` (as far as the
        notifications tell), or after the timeout (at most MAX_NAP_S)."""

        def relevant() -> bool:
            for generation, todos in reversed(self._recent):
                if generation <= beyond:
                    return False
                if todos is None or todo_id in todos:
                    return True
            return self._generation > beyond  # what came after `beyond` partly rolled out: re-check

        with self._changed:
            self._changed.wait_for(relevant, timeout=min(timeout, MAX_NAP_S))

    async def next_batch(self, *, beyond: int, timeout: float) -> None:
        """Return once a batch newer than generation `beyond` committed (whichever todos it
        changed), or after the timeout (at most MAX_NAP_S), without holding a thread."""
        loop = asyncio.get_running_loop()
        woken = loop.create_future()
        with self._changed:
            if self.generation > beyond:
                return
            self._sleepers.append((loop, woken))
        try:
            await asyncio.wait_for(woken, min(timeout, MAX_NAP_S))
        except TimeoutError:
            pass
        finally:
            with self._changed:
                if (loop, woken) in self._sleepers:
                    self._sleepers.remove((loop, woken))

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
                        for notify in conn.notifies(timeout=1.0):
                            todos = None if notify.payload == ANY_TODO else frozenset(notify.payload.split(","))
                            with self._changed:
                                self._generation += 1
                                self._recent.append((self._generation, todos))
                                self._changed.notify_all()
                                sleepers, self._sleepers = self._sleepers, []
                            for loop, woken in sleepers:
                                loop.call_soon_threadsafe(_wake, woken)
            except psycopg.Error as exc:
                if not self._stopping.is_set():
                    logger.warning("projection watcher lost its connection (%s); waiters re-check meanwhile", exc)
                    self._stopping.wait(1.0)


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


watcher = ProjectionWatcher()
