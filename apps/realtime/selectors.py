"""Reads of sockets: what a (re)connecting client missed, from the projection's durable history.

Live pushes go through Redis Pub/Sub (polystack.live), which may drop messages; the projection's
event history does not. A client tells where it stopped (the Kafka position of the last
event it saw, per partition); the socket sends everything newer that the user may see.

One race is closed here: events the realtime consumer pushed before the socket subscribed,
but that the projection had not applied yet, would be in neither stream. So before reading the
history the socket waits (bounded) until the projection has applied everything that was in
Kafka when the socket subscribed. Waits are woken by the projection's NOTIFY after each batch
(apps.projections.waiting), the same signal read-your-writes waits on.
"""
import asyncio
import logging
import threading
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

from apps.projections import selectors
from apps.projections.models import TodoEvent, TodoView
from apps.projections.waiting import watcher
from polystack.sockets import off_thread
from polystack.streaming import kafka
from polystack.streaming.topics import TODO_EVENTS, resolve

logger = logging.getLogger("apps.realtime")

MAX_CATCHUP_EVENTS = 2000  # more than this and the client reloads its list instead
MAX_TODO_CATCHUP_EVENTS = 500  # one todo's versions per catchup frame; ask again from the last one
WAIT_FOR_PROJECTION_S = 5.0


class HighWatermarks:
    """The next offset Kafka will write, per partition of todo-events, from one client per
    process (made on first use; a client per call would cost a connection per socket)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._client: Consumer | None = None

    def __call__(self) -> dict[int, int]:
        topic = resolve(TODO_EVENTS)
        with self._lock:
            if self._client is None:
                self._client = Consumer(kafka.base_config(**{"group.id": "realtime-watermarks",
                                                             "enable.auto.commit": False}))
            partitions = self._client.list_topics(topic, timeout=5).topics[topic].partitions
            return {p: self._client.get_watermark_offsets(TopicPartition(topic, p), timeout=5, cached=False)[1]
                    for p in partitions}


high_watermarks = HighWatermarks()


async def _until(check, *, timeout: float) -> bool:
    """Call the (synchronous, database) `check` after each batch the projection commits, until
    it holds or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        generation = watcher.generation  # before the check: a batch between it and the wait wakes us
        if await off_thread(check)():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        await watcher.next_batch(beyond=generation, timeout=remaining)


async def wait_for_projection(*, timeout: float = WAIT_FOR_PROJECTION_S) -> bool:
    """True once the projection applied all that is in Kafka now; False when it stays behind."""
    try:
        target = await asyncio.to_thread(high_watermarks)
    except KafkaException as exc:
        logger.warning("catch-up cannot see Kafka (%s); sending what the projection has", exc)
        return False

    def applied() -> bool:
        reached = selectors.projected_positions()
        return all(reached.get(p, -1) >= end - 1 for p, end in target.items() if end > 0)

    return await _until(applied, timeout=timeout)


async def wait_for_todo(todo_id: str, version: int, *, timeout: float = WAIT_FOR_PROJECTION_S) -> bool:
    """True once the projection applied `version` of the todo; False after the timeout."""
    return await _until(lambda: TodoView.objects.filter(id=todo_id, version__gte=version).exists(), timeout=timeout)


@off_thread
def events_after(*, user_id: int, positions: dict[int, int]) -> tuple[list[tuple[dict, int, int]], dict[int, int]]:
    """The missed events (envelope, partition, offset) and the projection's positions they
    reach (last offset applied per partition): live frames at or below those are duplicates."""
    reached = selectors.projected_positions()
    missed = selectors.events_after(user_id=user_id, positions=positions, partitions=reached,
                                    limit=MAX_CATCHUP_EVENTS + 1)
    return missed, reached


@off_thread
def may_see(*, user_id: int, todo_id: str) -> bool:
    return TodoView.objects.filter(selectors.may_see_q(user_id), id=todo_id).exists()


@off_thread
def todo_events_between(*, todo_id: str, after: int, before: int | None) -> list[tuple[dict, int, int]]:
    """One todo's events with after < aggregateVersion < before. Ask `may_see` first."""
    events = TodoEvent.objects.filter(todo_id=todo_id, aggregate_version__gt=after)
    if before is not None:
        events = events.filter(aggregate_version__lt=before)
    return list(events.order_by("aggregate_version").values_list("envelope", "partition", "offset")
                [:MAX_TODO_CATCHUP_EVENTS])
