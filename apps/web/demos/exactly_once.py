"""Exactly once: the sync coordinator is SIGKILLed with a Kafka transaction open; readers that
read committed see each record once, readers that read uncommitted see the aborted ones too;
then a second producer with the coordinator's transactional.id fences it, as a restarted slot
fences a zombie."""
import json
import logging
import os
import signal
import threading
import time
import uuid
from collections import Counter

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from apps.todos import services
from apps.web.demos import processes
from apps.web.demos.base import DemoError, Show, demo_user, wait_for
from polystack.ops import kafka_view
from polystack.streaming import kafka
from polystack.streaming.topics import DEVICE_SYNC_EVENTS, TODO_EVENTS, resolve

TITLE = "exactly once: kill the sync coordinator mid-transaction, count committed vs uncommitted, fence a zombie"
WATCH = ("the records the coordinator wrote for the demo's todos as read_uncommitted and read_committed "
         "readers count them, and the coordinator's process when another producer takes its transactional.id")
USER = "demo-exactly-once"
ROLE = "sync"
RATE = 80  # todos a second while the coordinator is caught
_QUIET = logging.getLogger("apps.web.demos.exactly_once.librdkafka")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


def run(show: Show, options) -> None:
    user, _ = demo_user(USER)
    group = options.group_of(ROLE)
    try:
        role = processes.find(processes.runconsumer(ROLE, options.groups.get(ROLE)), timeout=options.timeout_s)
    except processes.RoleNotFoundError as exc:
        raise DemoError(str(exc)) from None
    if role.supervisor is None:
        raise DemoError(f"the {ROLE} role runs without a supervisor: this demo kills it and needs it started "
                        "again (make run runs every role under polystack.ops.supervise)")
    transactional_id = f"{group}.{role.option('--instance', 'POLYSTACK_INSTANCE', '0')}"
    output = resolve(DEVICE_SYNC_EVENTS)
    starts = kafka.topic_ends(output, committed=False)
    flow = _Flow(user)
    try:
        show.step(f"The coordinator ({role.how}) turns each todo event into a record for each person who may "
                  f"see the todo, on {output}: records, state and consumed offsets commit in one Kafka "
                  f"transaction per batch (transactional.id {transactional_id}).")
        show.say(f"As {USER}, make about {RATE} todos a second, so that transactions follow one another.")
        flow.start()
        wait_for(lambda: flow.made >= RATE, timeout=options.timeout_s, what="the first todos")

        show.step("Freeze the coordinator until it is caught with a transaction open (records written, not "
                  "committed), then SIGKILL it.")
        open_records = wait_for(lambda: _caught_mid_transaction(role.pid, output), timeout=options.timeout_s,
                                what="the coordinator with a transaction open")
        os.kill(role.pid, signal.SIGKILL)
        show.fact("records written in the open transaction when killed", open_records)
        show.say("Its supervisor starts it again, in the same slot: init_transactions aborts what the dead one "
                 "left open, and it reads again from the offsets committed with the last transaction.")
        new_pid = processes.wait_restarted(role, options.timeout_s)
        show.fact(f"{ROLE} role is back", f"pid {new_pid}")
        time.sleep(options.hold_s)  # the flow goes on a while under the new process: what the demo shows
        flow.stop()
        show.fact("todos made", flow.made)

        show.step("Wait until the coordinator has committed everything, then read what it wrote for the demo's "
                  "todos, as each kind of reader sees it.")
        admin = kafka.admin_client()
        wait_for(lambda: kafka_view.groups(admin, {group: [resolve(TODO_EVENTS)]})[0].lag == 0
                 and not kafka.in_open_transactions(output), timeout=options.timeout_s * 2,
                 what="the coordinator to catch up")
        uncommitted = _records(output, starts, user.pk, committed=False)
        committed = _records(output, starts, user.pk, committed=True)
        show.fact("records a read_uncommitted reader reads", sum(uncommitted.values()))
        show.fact("(event, recipient) pairs it reads more than once",
                  sum(1 for n in uncommitted.values() if n > 1))
        show.fact("records a read_committed reader reads", sum(committed.values()))
        show.fact("(event, recipient) pairs a read_committed reader reads more than once",
                  sum(1 for n in committed.values() if n > 1))
        show.say("A device reads committed: it sees each of the demo's events once, none lost, none twice.")

        show.step("Fence a zombie: a producer with the coordinator's transactional.id starts, as a second "
                  "process of the same slot would. Kafka raises the id's epoch; the running coordinator now "
                  "holds the old one.")
        zombie_pid = processes.find(processes.runconsumer(ROLE, options.groups.get(ROLE)),
                                    timeout=options.timeout_s).pid
        # Its fencing is what we show, in our words: librdkafka's own lines about it stay quiet.
        usurper = Producer(kafka.producer_config(**{"transactional.id": transactional_id, "logger": _QUIET,
                                                    "error_cb": lambda error: None}))
        usurper.init_transactions(30)
        show.say("The next batch it tries to commit is refused: fenced. It stops, and its supervisor starts it "
                 "again, which fences our producer in turn.")
        flow.once()
        restarted = processes.wait_restarted(role, options.timeout_s * 2, other_than=zombie_pid)
        show.fact("the fenced coordinator", f"pid {zombie_pid}, gone; pid {restarted} took its slot")
        probe = Consumer(kafka.quiet_config(**{"group.id": f"demo-exactly-once-{uuid.uuid4().hex}"}))
        try:
            fenced = wait_for(lambda: _fenced(usurper, probe), timeout=options.timeout_s,
                              what="the new coordinator to fence our producer")
        finally:
            probe.close()
        show.fact("our producer", f"fenced ({fenced})")
    finally:
        flow.stop()
        show.step("Clean up: delete the demo's todos.")
        deleted = flow.delete_all()
        show.say(f"deleted {deleted} todos")


class _Flow(threading.Thread):
    """Todos of the demo's user made through the write side (commands, outbox), at RATE a second."""

    def __init__(self, user):
        super().__init__(daemon=True)
        self.user, self.made, self.ids = user, 0, []
        self.stopping = threading.Event()

    def run(self) -> None:
        from django.db import connection

        try:
            while not self.stopping.wait(1 / RATE):  # the flow's pace, not a wait for an effect
                self.once()
        finally:
            connection.close()

    def once(self) -> None:
        todo = services.todo_create(actor=self.user, title=f"exactly once {self.made + 1}",
                                    correlation_id=f"demo-exactly-once-{uuid.uuid4().hex[:8]}").todo_id
        self.ids.append(todo)
        self.made += 1

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join()

    def delete_all(self) -> int:
        for todo_id in self.ids:
            services.todo_delete(actor=self.user, todo_id=todo_id, correlation_id="demo-exactly-once-clean-up")
        return len(self.ids)


def _fenced(producer: Producer, probe: Consumer) -> str | None:
    """The error that ends a transaction of `producer` once another holds its transactional.id,
    or None. Librdkafka sends nothing for an empty transaction, so this one adds an offset of a
    throwaway group (`probe`'s) and aborts: the broker answers, and nothing is ever committed."""
    try:
        producer.begin_transaction()
        producer.send_offsets_to_transaction([TopicPartition(resolve(TODO_EVENTS), 0, 0)],
                                             probe.consumer_group_metadata(), 30)
        producer.abort_transaction(30)
    except KafkaException as exc:
        return exc.args[0].str()
    return None


def _caught_mid_transaction(pid: int, topic: str) -> int:
    """SIGSTOP the process; the records of its open transaction if it holds one that only an
    abort can end now, else 0 (and it goes on). A process stopped just after asking for its
    commit has it ended by the broker in milliseconds: it must still be open a moment later."""
    os.kill(pid, signal.SIGSTOP)
    try:
        if kafka.in_open_transactions(topic):
            time.sleep(0.5)  # a commit the broker had begun ends well within this
            if held := kafka.in_open_transactions(topic):
                return held
    except BaseException:
        os.kill(pid, signal.SIGCONT)  # never left frozen by an error or a Ctrl-C here
        raise
    os.kill(pid, signal.SIGCONT)
    time.sleep(0.05)  # let it run a moment before the next try
    return 0


def _records(topic: str, starts: dict[int, int], user_id: int, *, committed: bool) -> Counter:
    """(eventId, recipient) -> how often a reader of that isolation level reads it for the user,
    from `starts` to the topic's end now."""
    ends = kafka.topic_ends(topic, committed=committed)
    consumer = Consumer(kafka.quiet_config(**{
        "group.id": f"demo-exactly-once-{uuid.uuid4().hex}", "enable.auto.commit": False,
        "isolation.level": "read_committed" if committed else "read_uncommitted"}))
    remaining = {p for p in ends if ends[p] > starts.get(p, 0)}
    consumer.assign([TopicPartition(topic, p, starts.get(p, 0)) for p in remaining])
    seen: Counter = Counter()
    deadline = time.monotonic() + 60
    try:
        while remaining:
            if time.monotonic() > deadline:
                raise DemoError(f"{topic} not read to its end within 60 s")
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                if message.error() or message.offset() >= ends[message.partition()]:
                    continue
                if message.key() == str(user_id).encode():
                    try:
                        record = json.loads(message.value())
                        seen[(str(record["event"]["eventId"]), str(record["recipient"]))] += 1
                    except (TypeError, ValueError, KeyError):
                        continue  # anyone may write to the topic: not a record of the coordinator's
            remaining -= {tp.partition for tp in consumer.position([TopicPartition(topic, p) for p in remaining])
                          if tp.offset >= ends[tp.partition]}
    finally:
        consumer.close()
    return seen
