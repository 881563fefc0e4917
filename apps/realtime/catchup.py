"""What a (re)connecting client missed, from the projection's durable history.

Live pushes go through the Redis channel layer, which may drop messages; the projection's
event history does not. A client tells where it stopped (the Kafka position of the last
event it saw, per partition); the socket sends everything newer that the user may see.

One race is closed here: events the realtime consumer pushed before the socket joined its
group, but that the projection had not applied yet, would be in neither stream. So before
reading the history the socket waits (bounded) until the projection has applied everything
that was in Kafka when the socket joined.
"""
import asyncio
import logging
import threading
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

from apps.projections import selectors
from apps.projections.models import TodoEvent, TodoView
from apps.realtime.db import off_thread
from polystack.streaming import kafka
from polystack.streaming.topics import TODO_EVENTS, resolve

logger = logging.getLogger("apps.realtime")

MAX_CATCHUP_EVENTS = 2000  # more than this and the client reloads its list instead
MAX_TODO_CATCHUP_EVENTS = 500  # one todo's versions per catchup frame; ask again from the last one
WAIT_FOR_PROJECTION_S = 5.0
POLL_S = 0.05

_client_lock = threading.Lock()
_client: Consumer | None = None


def _high_watermarks() -> dict[int, int]:
    """The next offset Kafka will write, per partition of todo-events (one shared client per process)."""
    global _client
    topic = resolve(TODO_EVENTS)
    with _client_lock:
        if _client is None:
            _client = Consumer(kafka.base_config(**{"group.id": "realtime-watermarks", "enable.auto.commit": False}))
        partitions = _client.list_topics(topic, timeout=5).topics[topic].partitions
        return {p: _client.get_watermark_offsets(TopicPartition(topic, p), timeout=5, cached=False)[1]
                for p in partitions}


async def _poll(check, *, timeout: float) -> bool:
    """Call the (synchronous, database) `check` until it holds or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not await off_thread(check)():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(POLL_S)
    return True


async def wait_for_projection(*, timeout: float = WAIT_FOR_PROJECTION_S) -> bool:
    """True once the projection applied all that is in Kafka now; False when it stays behind."""
    try:
        target = await asyncio.to_thread(_high_watermarks)
    except KafkaException as exc:
        logger.warning("catch-up cannot see Kafka (%s); sending what the projection has", exc)
        return False

    def applied() -> bool:
        reached = selectors.projected_positions()
        return all(reached.get(p, -1) >= end - 1 for p, end in target.items() if end > 0)

    return await _poll(applied, timeout=timeout)


async def wait_for_todo(todo_id: str, version: int, *, timeout: float = WAIT_FOR_PROJECTION_S) -> bool:
    """True once the projection applied `version` of the todo; False after the timeout."""
    return await _poll(lambda: TodoView.objects.filter(id=todo_id, version__gte=version).exists(), timeout=timeout)


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
