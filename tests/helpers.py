"""Test helpers for the real stack: unique topics, producing, polling with a deadline."""
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import NewTopic
from django.conf import settings

from polystack.streaming import kafka

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, timeout: float = 30.0, what: str = "the condition") -> T:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)  # the poll interval of this deadline wait, not a wait for an effect


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_topic(name: str, partitions: int = 1, config: dict | None = None) -> str:
    admin = kafka.admin_client()
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions,
                                            replication_factor=settings.KAFKA_REPLICATION_FACTOR, config=config or {})])
    futures[name].result(30)
    wait_until(lambda: name in admin.list_topics(timeout=10).topics, what=f"topic {name} in metadata")
    return name


def delete_topics(names: Iterable[str]) -> None:
    names = list(names)
    if names:
        admin = kafka.admin_client()  # keep the client alive until the futures resolve
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.result(30)


def produce(topic: str, values: Iterable[Any], *, key: Callable[[int], bytes | None] = lambda i: None,
            partition: int | None = None, headers: list | None = None) -> int:
    """Produce values (dicts are JSON-encoded, bytes sent as they are) and wait for the acks."""
    producer = Producer(kafka.producer_config(**{"linger.ms": 20}))
    count = 0
    for i, value in enumerate(values):
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        extra = {} if partition is None else {"partition": partition}
        producer.produce(topic, value=raw, key=key(i), headers=headers, **extra)
        producer.poll(0)
        count += 1
    assert producer.flush(30) == 0, "messages not acknowledged"
    return count


def consume_all(topic: str, expected: int, *, timeout: float = 30.0) -> list:
    """Read `expected` messages of `topic` from the beginning with a throwaway group."""
    consumer = Consumer(kafka.base_config(**{"group.id": unique("reader"), "auto.offset.reset": "earliest",
                                             "enable.auto.commit": False}))
    consumer.subscribe([topic])
    got: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < expected and time.monotonic() < deadline:
            got.extend(m for m in consumer.consume(num_messages=expected - len(got), timeout=0.5) if not m.error())
    finally:
        consumer.close()
    return got


def consume_to_end(topic: str, *, timeout: float = 30.0) -> list:
    """Every message `topic` holds now (kafka.read_to_end). For "nothing more than": no wait
    for messages that may never come."""
    return list(kafka.read_to_end(topic, group_id=unique("reader"), timeout=timeout))


def committed(group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (-1001 where none)."""
    consumer = Consumer(kafka.base_config(**{"group.id": group, "enable.auto.commit": False}))
    try:
        result = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in result}


def manage(*args: str, env: dict | None = None, module: str | None = None, **kwargs) -> subprocess.Popen:
    """Start `python manage.py ARGS` (or `python -m MODULE ARGS`) as its own process with the
    test settings."""
    full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "polystack.settings.test", **(env or {})}
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kwargs}
    command = ["-m", module] if module else [str(ROOT / "manage.py")]
    return subprocess.Popen([sys.executable, *command, *args], cwd=ROOT, env=full_env, text=True, **streams)


def web_role_args(port: int) -> list[str]:
    """`python -m daphne` arguments for the web role on 127.0.0.1:port, as `make run` starts it
    (polystack/ops/roles.py WEB)."""
    from polystack.ops.roles import WEB

    return WEB.format(host="127.0.0.1", port=port).split()[1:]


def stop(process: subprocess.Popen, timeout: float = 30.0) -> tuple[int, str, str]:
    """SIGTERM a process started by manage() and collect its output."""
    if process.poll() is None:
        process.terminate()
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return process.returncode, out, err


def free_port() -> int:
    """A loopback TCP port nobody listens on (the OS picks it)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def api_client(user):
    """A DRF client authenticated the way users are: with the user's token."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


class MailInbox:
    """A real SMTP server on loopback (aiosmtpd) keeping what it receives in `messages`,
    as (recipients, email.message.EmailMessage), and when (`received_at`, epoch seconds). It can
    be stopped and started again, or set `refusing` (it answers 451, try again later, and counts
    the refusals)."""

    def __init__(self, port: int):
        self.port = port
        self.messages: list[tuple[list[str], Any]] = []
        self.received_at: list[float] = []
        self.refusing = False
        self.refused = 0
        self._controller = None

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes, policy

        if self.refusing:
            self.refused += 1
            return "451 4.3.0 Mailbox busy, try again later"
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
        self.received_at.append(time.time())
        return "250 Message accepted for delivery"

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


def caught_up(group: str, topic: str) -> bool:
    """Whether `group` committed everything in `topic` (every partition at its end)."""
    consumer = Consumer(kafka.base_config(**{"group.id": group, "enable.auto.commit": False}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: kafka.high_watermark(consumer, topic, p) for p in partitions}
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError._TIMED_OUT:
            raise
        return False  # the broker slow to answer on a loaded machine: not known yet, ask again
    finally:
        consumer.close()
    return all(tp.offset >= ends[tp.partition] or ends[tp.partition] == 0 for tp in committed)
