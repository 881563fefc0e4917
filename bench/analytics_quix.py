"""Quix Streams applications for the analytics benchmark: one that only reads and decodes the
todo events, and one that folds them into the same four windows as apps.analytics.processor
with Quix's own windows and RocksDB state stores (exactly-once), for comparison.

The second is what the analytics role first was. Measured here (make bench), it handles a few
hundred events per second: every window update is a state store read and write, a changelog
record and an output record of its own, for each of the 24 windows a day-long hopping window
puts an event in. The processor on our runner folds a batch per user in memory and sends each
window once per batch.
"""
import json
import warnings

from django.conf import settings

from apps.analytics import facts
from apps.analytics.processor import decode
from apps.analytics.windows import WINDOWS
from apps.todos import events

# confluent-kafka's schema registry client, imported by Quix Streams, warns about authlib.
warnings.filterwarnings("ignore", message="The httpx module is deprecated")
from quixstreams import Application  # noqa: E402


def _to_fact(event: tuple[dict, int], state) -> dict:
    envelope, at = event
    fact, todo = facts.fact_of(envelope, state.get(envelope["aggregateId"]), at)
    if todo is None:
        state.delete(envelope["aggregateId"])
    else:
        state.set(envelope["aggregateId"], todo)
    return fact


def application(topic: str, *, on_message_processed, full_topology: bool, state_dir: str) -> Application:
    app = Application(
        broker_address=settings.KAFKA_BOOTSTRAP_SERVERS, consumer_group=f"bench-quix-{topic}-{full_topology}",
        auto_offset_reset="earliest", state_dir=state_dir, on_message_processed=on_message_processed,
        processing_guarantee="exactly-once" if full_topology else "at-least-once", commit_interval=1.0,
        loglevel="WARNING")
    stream = app.dataframe(app.topic(topic, value_deserializer="bytes", key_deserializer="bytes"))
    if not full_topology:
        stream.apply(lambda value: events.read(json.loads(value)))
        return app
    stream = (stream.apply(lambda value, key, timestamp, headers: decode(value, key, timestamp), metadata=True)
              .set_timestamp(lambda event, key, timestamp, headers: event[1])
              .apply(_to_fact, stateful=True))
    for spec in WINDOWS:
        options = {"name": spec.name, "grace_ms": settings.ANALYTICS_GRACE_MS, "on_late": lambda *args: False}
        if spec.kind == "tumbling":
            window = stream.tumbling_window(spec.duration_ms, **options)
        elif spec.kind == "hopping":
            window = stream.hopping_window(spec.duration_ms, spec.step_ms, **options)
        else:
            window = stream.sliding_window(spec.duration_ms, **options)
        new, add = spec.fold
        output = app.topic(f"{topic}-{spec.name}", value_serializer="json")
        window.reduce(add, lambda fact, new=new, add=add: add(new(), fact)).current().to_topic(output)
    return app
