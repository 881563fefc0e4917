"""The sync roles.

- `runconsumer sync` (group sync-group): the coordinator of apps.sync.coordinator —
  todo-events into device-sync-events, one record per event and recipient, exactly once
  (Kafka transactions).
- `runconsumer sync-sink` (group sync-sink-group): materialises device-sync-events into
  PostgreSQL (apps.sync.services.records_store), reading committed transactions only,
  idempotently by offset, and pushes each new record to its user's online devices.
"""
from apps.sync import records, services
from apps.sync.coordinator import SyncCoordinator
from polystack.streaming import topics
from polystack.streaming.registry import Message, NonRetriableError, consumer, decode_bytes

consumer(
    name="sync",
    topics=[topics.TODO_EVENTS],
    group_id="sync-group",
    dlq_topic=topics.TODO_EVENTS_DLQ,
    store="todos",
    outputs=[topics.DEVICE_SYNC_EVENTS],
    # A transaction costs milliseconds on loopback whatever it holds. `make bench sync` measured
    # exactly once at transactions of up to 10 / 100 / 500 / 2,000 / 5,000 events: 889 / 8,014 /
    # 25,369 / 28,997 / 26,516 events/s. Live, a batch is what is there (often one event).
    max_batch_size=2000,
    consumer_config={"fetch.wait.max.ms": 20},
)(SyncCoordinator)


@consumer(
    name="sync-sink",
    topics=[topics.DEVICE_SYNC_EVENTS],
    group_id="sync-sink-group",
    dlq_topic=topics.DEVICE_SYNC_EVENTS_DLQ,
    decoder=decode_bytes,
    max_batch_size=2000,
    # Reading committed transactions only, a fetch that finds none waits fetch.wait.max.ms
    # (500 ms by default) even after the transaction commits: that would be the sink's latency.
    consumer_config={"isolation.level": "read_committed", "fetch.wait.max.ms": 20},
)
class SyncSink:
    """Materialises device-sync-events into each user's records and todos, and pushes them live."""

    def handle_batch(self, messages: list[Message]) -> list[tuple[Message, NonRetriableError]]:
        parsed, rejected = [], []
        for message in messages:
            try:
                parsed.append(records.parse(message.key, message.value, message.partition, message.offset))
            except NonRetriableError as exc:
                rejected.append((message, exc))
        services.records_store(records=parsed)
        return rejected
