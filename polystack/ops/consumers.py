"""`runconsumer dlq-index` (group dlq-indexer): every message of every DLQ topic into the triage
table (polystack.ops.deadletters), once, and the admins told of new ones. It stores whatever it
reads (bytes, and headers as text), so nothing it reads can fail: it has no DLQ of its own."""
from polystack.ops import deadletters
from polystack.streaming.registry import Message, NonRetriableError, consumer, decode_bytes
from polystack.streaming.topics import TOPICS

DLQ_TOPICS = [spec.name for spec in TOPICS if spec.name.endswith("-dlq")]


@consumer(name="dlq-index", topics=DLQ_TOPICS, group_id="dlq-indexer", dlq_topic=None, decoder=decode_bytes,
          max_batch_size=500)
class IndexDeadLetters:
    """Indexes every dead letter for triage in the admin and `manage.py dlq`."""

    def handle_batch(self, messages: list[Message]) -> list[tuple[Message, NonRetriableError]]:
        deadletters.alert_admins(deadletters.letters_index([message.raw for message in messages]))
        return []
