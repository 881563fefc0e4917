"""The writers of the relay benchmark's concurrent case, in processes of their own (spawned, so
this module imports nothing of Django before `django.setup()`)."""
import json
import time


def write(events: list[dict], todo_id: str, through_outbox: bool, start, results) -> None:
    """Commit one transaction per event, as fast as they go, from when `start` opens: each locks
    and bumps a todo's state row, as a command does, and then either appends the event to the
    outbox (the relay publishes it) or, after the commit, produces it straight to Kafka (the
    bare baseline: what a service without an outbox would do). Sends back each event's commit
    time (wall clock) and when the process finished."""
    import django

    django.setup()
    from django.db import connection, transaction

    from apps.todos import services
    from apps.todos.models import TodoState
    from polystack.streaming import kafka
    from polystack.streaming.topics import TODO_EVENTS, resolve

    topic = resolve(TODO_EVENTS)
    producer = None if through_outbox else kafka.Producer(kafka.producer_config(**{"message.timeout.ms": 0}))
    bump = f"UPDATE {TodoState._meta.db_table} SET version = version + 1 WHERE id = %s"
    committed = []
    start.wait()
    for envelope in events:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(bump, [todo_id])
            if through_outbox:
                services.outbox_append(cursor, [envelope])
        committed.append((envelope["eventId"], time.time()))
        if producer is not None:
            kafka.produce(producer, topic, key=envelope["userId"].encode(), value=json.dumps(envelope).encode(),
                          headers=[("eventType", envelope["eventType"].encode()),
                                   ("schemaVersion", str(envelope["schemaVersion"]).encode()),
                                   ("correlationId", envelope["correlationId"].encode())])
            producer.poll(0)
    if producer is not None:
        assert producer.flush(60) == 0
    connection.close()
    results.put(committed)
