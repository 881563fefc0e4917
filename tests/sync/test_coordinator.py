"""The sync coordinator against the real broker: each todo event reaches each recipient's
stream exactly once — proved by killing it in the middle of its transactions, and by a zombie
that wakes up after another process took its partitions (Kafka's transactions_test, in the
small)."""
import json
import os
import random
import signal
import threading
import uuid
from collections import Counter, defaultdict

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, Producer, TopicPartition

from apps.todos import services
from polystack.streaming import kafka, topics
from polystack.streaming.topics import resolve
from tests import helpers
from tests.projections.synthetic import publish
from tests.sync.conftest import records
from tests.sync.synthetic import Todos, recipients

USERS = list(range(7001, 7013))
TEAM = USERS[:6]


def flowing(envelopes: list[dict], *, per_second: float) -> threading.Thread:
    """Publish the events, keyed by owner, in small acknowledged chunks at about `per_second`."""

    def run():
        producer = Producer(kafka.producer_config(**{"linger.ms": 5}))
        chunk = max(1, int(per_second / 20))
        for start in range(0, len(envelopes), chunk):
            for envelope in envelopes[start:start + chunk]:
                kafka.produce(producer, resolve(topics.TODO_EVENTS), key=envelope["userId"].encode(),
                              value=json.dumps(envelope).encode())
            assert producer.flush(30) == 0
            threading.Event().wait(0.05)  # the flow's pace, not a wait for an effect

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def open_transaction() -> bool:
    """Records written to device-sync-events whose transaction has not ended yet."""
    return kafka.in_open_transactions(resolve(topics.DEVICE_SYNC_EVENTS)) > 0


def stopped_mid_transaction(process) -> bool:
    """SIGSTOP the process; True if it holds a transaction open that only an abort can end, else
    it goes on. Seeing one open and then signalling would race with its commit; and a stopped
    process may have asked for its commit already (the broker then ends the transaction without
    it, in milliseconds), so the transaction must still be open a moment later."""
    os.kill(process.pid, signal.SIGSTOP)
    if open_transaction():
        try:  # a commit the broker has begun ends well within this deadline
            helpers.wait_until(lambda: not open_transaction(), timeout=0.5, what="the transaction to end")
        except AssertionError:
            return True  # still open: only an abort can end it now
    os.kill(process.pid, signal.SIGCONT)
    return False


def offsets_pending(group: str) -> bool:
    """The group has offsets of todo-events sent to a transaction that has not ended (the broker
    answers a stable-offsets fetch of them with UNSTABLE_OFFSET_COMMIT until it does)."""
    topic = resolve(topics.TODO_EVENTS)
    asked = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(6)])
    admin = kafka.admin_client()  # held until its answer: a client destroyed sooner never gives one
    future = admin.list_consumer_group_offsets([asked], require_stable=True, request_timeout=5)[group]
    partitions = future.result(timeout=10).topic_partitions
    return any(tp.error is not None and tp.error.code() == KafkaError.UNSTABLE_OFFSET_COMMIT for tp in partitions)


def exactly_once(envelopes: list[dict]) -> list[dict]:
    """device-sync-events, read committed, holds each (event, recipient) once, keyed by the
    recipient, each todo's records in version order in each recipient's stream."""
    got = records(committed=True)
    pairs = Counter((r["event"]["eventId"], r["recipient"]) for r in got)
    assert [pair for pair, n in pairs.items() if n > 1] == [], "a record twice"
    assert set(pairs) == set(recipients(envelopes)), "a record missing, or one nobody should have"
    assert all(r["key"] == r["recipient"] for r in got)
    versions = defaultdict(list)
    partition_of = {}
    for r in sorted(got, key=lambda r: (r["partition"], r["offset"])):
        versions[(r["recipient"], r["event"]["aggregateId"])].append(r["event"]["aggregateVersion"])
        assert partition_of.setdefault(r["recipient"], r["partition"]) == r["partition"], "one partition per user"
    assert all(v == sorted(v) for v in versions.values()), "in version order in each stream"
    return got


def test_commands_reach_each_recipient_with_the_todo_after_them(sync, roles, user_factory):
    """Real commands: an assignee outside the team who loses the todo is told it left their view."""
    alice, bob, carol = user_factory(), user_factory(), user_factory()
    team = services.Team.objects.create(name="home", owner=alice)
    team.members.add(alice, bob)
    roles("runrelay")
    sync.coordinator()
    todo = services.todo_create(actor=alice, title="Paint the fence", team_id=team.id, correlation_id="c1").todo_id
    services.Team.objects.create(name="friends", owner=alice).members.add(alice, carol)
    mine = services.todo_create(actor=alice, title="Call Carol", correlation_id="c3").todo_id
    services.todo_assign(actor=alice, todo_id=mine, assignee=carol, correlation_id="c4")
    services.todo_assign(actor=alice, todo_id=mine, assignee=alice, correlation_id="c5")  # Carol loses it
    services.todo_delete(actor=alice, todo_id=todo, correlation_id="c7")

    helpers.wait_until(sync.caught_up, timeout=60, what="the coordinator through every event")
    got = records()
    stream = {key: [(r["event"]["eventType"], r["visible"], r["todo"] and r["todo"]["title"]) for r in got
                    if r["key"] == key] for key in {str(alice.pk), str(bob.pk), str(carol.pk)}}
    assert stream[str(bob.pk)] == [("TodoCreated", True, "Paint the fence"), ("TodoDeleted", False, None)]
    assert stream[str(carol.pk)] == [("TodoAssigned", True, "Call Carol"), ("TodoAssigned", False, "Call Carol")]
    assert [kind for kind, _, _ in stream[str(alice.pk)]] == ["TodoCreated", "TodoCreated", "TodoAssigned",
                                                              "TodoAssigned", "TodoDeleted"]
    carol_sees = next(r["todo"] for r in got if r["key"] == str(carol.pk))
    assert carol_sees["assignedTo"] == str(carol.pk) and carol_sees["version"] == 2 and carol_sees["userId"] == str(alice.pk)


def test_sigkill_in_the_middle_of_transactions_loses_and_duplicates_nothing(sync):
    stream = Todos(users=USERS, team=TEAM, rng=random.Random(11))
    envelopes = [stream.event() for _ in range(5000)]
    flow = flowing(envelopes, per_second=250)
    process = sync.coordinator()
    for kill in range(3):
        # Up (its init_transactions aborted what its predecessor left open), then in the middle
        # of a transaction of its own: records written, not committed.
        helpers.wait_until(lambda: sync.log_of("0").count("assigned ") > kill, timeout=60, what="the process up")
        helpers.wait_until(lambda: stopped_mid_transaction(process), timeout=60,
                           what="the process stopped with a transaction open")
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        process = sync.coordinator()  # the same slot: the same transactional.id and group member
    flow.join()
    helpers.wait_until(sync.caught_up, timeout=120, what="the coordinator through every event")
    helpers.wait_until(lambda: not open_transaction(), timeout=60, what="no transaction left open")

    committed = exactly_once(envelopes)
    written = records(committed=False)
    assert len(written) > len(committed), "the kills landed mid-transaction: their records were written, then aborted"
    assert sync.log_of("0").count("assigned ") >= 4, "four processes took the partitions in turn"


def test_a_zombie_wakes_up_fenced_and_none_of_its_writes_shows(sync):
    stream = Todos(users=USERS, team=TEAM, rng=random.Random(12))
    envelopes = [stream.event() for _ in range(1500)]
    # Frozen with its transaction open and its offsets not sent yet (offsets sent while it was a
    # member were rightly accepted: woken up, it could commit that transaction, and the member that
    # took over would start after it). The fault-injection pause holds it in that window.
    zombie = sync.coordinator("0", STREAM_FAULT_PAUSE_BEFORE_OFFSETS_S="5")
    flow = flowing(envelopes, per_second=200)
    helpers.wait_until(lambda: "pausing" in sync.log_of("0") and open_transaction(), timeout=60,
                       what="the first process in its pause, its transaction open")
    os.kill(zombie.pid, signal.SIGSTOP)
    assert open_transaction() and not offsets_pending(sync.group)
    try:
        survivor = sync.coordinator("1")
        # After its session timeout (10 s) the group gives the zombie's partitions to the survivor.
        # (A cooperative rebalance may assign it nothing at first: wait for all six partitions.)
        helpers.wait_until(lambda: all(f"todo-events[{p}]" in "".join(
            line for line in sync.log_of("1").splitlines() if " assigned " in line) for p in range(6)),
            timeout=60, what="the survivor taking all the partitions over")
        flow.join()
    finally:
        os.kill(zombie.pid, signal.SIGCONT)  # it goes on with the transaction it had open: fenced
    helpers.wait_until(sync.caught_up, timeout=120, what="the survivor through every event")
    helpers.wait_until(lambda: not open_transaction(), timeout=60, what="the zombie's transaction ended")
    exactly_once(envelopes)
    assert len(records(committed=False)) > len(records(committed=True)), "the zombie's records were aborted"
    zombie_said = sync.log_of("0")
    assert "transaction aborted" in zombie_said or "fatally" in zombie_said, zombie_said[-3000:]
    assert survivor.poll() is None, "the survivor runs on"


def test_what_is_not_a_todo_event_goes_to_the_dlq_and_the_stream_goes_on(sync):
    stream = Todos(users=USERS[:2], team=[], rng=random.Random(13))
    good = [stream.event() for _ in range(20)]
    gap = {**good[9], "eventId": str(uuid.uuid4()), "aggregateVersion": good[9]["aggregateVersion"] + 5}
    publish(resolve(topics.TODO_EVENTS), [b"not json", *good[:10], gap, *good[10:]])
    sync.coordinator()
    helpers.wait_until(sync.caught_up, timeout=60, what="the coordinator through every event")
    exactly_once(good)
    letters = helpers.consume_to_end(resolve(topics.TODO_EVENTS_DLQ))
    assert sorted(dict(m.headers())["dlq.error.class"].decode() for m in letters) == [
        "NonRetriableError", "UnsyncableEventError"]
