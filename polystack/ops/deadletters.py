"""DLQ triage, for every `*-dlq` topic: index each dead letter into PostgreSQL, tell the admins,
and let people redrive or discard letters (the admin, `manage.py dlq`), each action recorded.

A redrive publishes the letter's bytes back to where it failed (its original topic and
partition, or that topic's first retry topic), exactly once however often it is asked for:

1. Under the letter's row lock, parked -> redriving, with the target partition's end offset at
   that moment (`redrive_scan_from`); committed before anything is produced.
2. Under the lock again, unless another redrive finished meanwhile: look from that offset for a
   record carrying this letter's `dlq.redrive.id` header (a redrive killed after the broker
   acknowledged it and before step 3 committed), produce only if there is none, wait for the
   acknowledgement, then redriving -> redriven with the record's offset.

Two presses of the button, or two admins at once, meet at the row lock: the second finds the
letter redriven. A letter whose original topic is not one of ours (a forged dlq.* header) is
not redriven anywhere. The original headers go back with it (as text), without the failure's
dlq.* and retry.* ones.
"""
import json
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from django.conf import settings
from django.core.mail import mail_admins
from django.db import transaction
from django.db.models import Count, Min
from django.utils import timezone

from polystack.ops.models import DeadLetter, DeadLetterAction, DlqAlert
from polystack.streaming import kafka
from polystack.streaming.topics import TOPICS, resolve, retry_topic

logger = logging.getLogger("polystack.ops.deadletters")

REDRIVE_ID = "dlq.redrive.id"
_DROPPED_ON_REDRIVE = ("dlq.", "retry.")  # the failure's headers; the original ones go back


class TriageError(Exception):
    """An action that cannot be done (the message says why, for people)."""


def dlq_topics() -> list[str]:
    """Every DLQ topic (resolved names)."""
    return [resolve(spec.name) for spec in TOPICS if spec.name.endswith("-dlq")]


def _redrivable() -> dict[str, int]:
    """The topics a letter may go back to (resolved name -> partitions): ours, and not a DLQ."""
    return {resolve(spec.name): spec.partitions for spec in TOPICS if not spec.name.endswith("-dlq")}


# --- indexing ------------------------------------------------------------------------------
def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def _int(value: str | None) -> int | None:
    try:
        number = int(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and 0 <= number < 2**62 else None


def letter_from(raw) -> DeadLetter:
    """The row of one DLQ message (a confluent-kafka message). Headers are anyone's: each is
    read as text, bounded, and a bad number is no number."""
    headers = [[name, _text(value)] for name, value in (raw.headers() or [])]
    first = {}
    for name, value in headers:
        first.setdefault(name, value)
    kind, timestamp = raw.timestamp()
    parked_at = datetime.fromtimestamp(timestamp / 1000, UTC) if kind and timestamp > 0 else timezone.now()
    return DeadLetter(
        topic=raw.topic(), partition=raw.partition(), offset=raw.offset(), key=raw.key(), value=raw.value(),
        headers=headers, parked_at=parked_at,
        original_topic=(first.get("dlq.original.topic") or "")[:249],
        original_partition=_int(first.get("dlq.original.partition")),
        original_offset=_int(first.get("dlq.original.offset")),
        consumer_group=(first.get("dlq.consumer.group") or "")[:255],
        error_class=(first.get("dlq.error.class") or "")[:255],
        error_message=(first.get("dlq.error.message") or "")[:5000],
        attempts=_int(first.get("dlq.attempts")),
        correlation_id=(first.get("correlationId") or "")[:100],
    )


def letters_index(raws: list) -> Counter:
    """Index DLQ messages (again: a no-op); returns how many were new, per DLQ topic."""
    letters = [letter_from(raw) for raw in raws]
    if not letters:
        return Counter()
    seen = set(DeadLetter.objects.filter(topic__in={letter.topic for letter in letters},
                                         offset__in={letter.offset for letter in letters})
               .values_list("topic", "partition", "offset"))
    DeadLetter.objects.bulk_create(letters, ignore_conflicts=True)  # a redelivered batch: nothing new
    return Counter(letter.topic for letter in letters if (letter.topic, letter.partition, letter.offset) not in seen)


def alert_admins(new: Counter) -> None:
    """Tell the site's admins that letters arrived, at most once per DLQ topic per
    DLQ_ALERT_INTERVAL_S. Never raises: a mail server down must not stop the indexing."""
    now = timezone.now()
    interval = timedelta(seconds=settings.DLQ_ALERT_INTERVAL_S)
    for topic, count in new.items():
        DlqAlert.objects.get_or_create(topic=topic, defaults={"last_sent_at": now - interval - timedelta(seconds=1)})
        if not DlqAlert.objects.filter(topic=topic, last_sent_at__lt=now - interval).update(last_sent_at=now):
            continue  # told recently
        parked = DeadLetter.objects.filter(topic=topic, state=DeadLetter.PARKED).count()
        try:
            mail_admins(f"{count} new dead letter(s) in {topic}",
                        f"{topic} received {count} new dead letter(s); {parked} are parked in all.\n\n"
                        f"Triage them in the admin ({settings.PUBLIC_BASE_URL}/admin/ops/deadletter/?topic__exact={topic}) "
                        f"or with `python manage.py dlq list --topic {topic}`.\n"
                        f"You are told at most once every {settings.DLQ_ALERT_INTERVAL_S} s per topic.")
        except Exception as exc:  # noqa: BLE001 - see the docstring
            logger.warning("could not tell the admins about %s: %s: %s", topic, type(exc).__name__, exc)


def stats() -> list[dict]:
    """Per DLQ topic: letters parked and the oldest one's time and age (for monitoring)."""
    now = timezone.now()
    found = {row["topic"]: row for row in DeadLetter.objects.filter(state=DeadLetter.PARKED).values("topic").annotate(
        parked=Count("id"), oldest=Min("parked_at"))}
    result = []
    for topic in dlq_topics():
        row = found.get(topic, {"parked": 0, "oldest": None})
        result.append({"topic": topic, "parked": row["parked"], "oldestAt": row["oldest"],
                       "oldestAgeSeconds": (now - row["oldest"]).total_seconds() if row["oldest"] else None})
    return result


# --- triage ------------------------------------------------------------------------------
@dataclass
class Outcome:
    done: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)  # letter id -> why not

    def summary(self, verb: str) -> str:
        text = f"{len(self.done)} letter(s) {verb}"
        if self.skipped:
            text += f"; {len(self.skipped)} not: " + "; ".join(f"#{i} {why}" for i, why in self.skipped.items())
        return text


def letters_discard(*, ids: list[int], reason: str, actor_name: str, actor=None) -> Outcome:
    """Mark parked letters discarded, with the reason; each recorded with who and when."""
    reason = reason.strip()
    if not reason:
        raise TriageError("say why the letters are discarded")
    outcome = Outcome()
    for letter_id in ids:
        with transaction.atomic():
            letter = DeadLetter.objects.select_for_update().filter(id=letter_id).first()
            if letter is None:
                outcome.skipped[letter_id] = "no such letter"
            elif letter.state != DeadLetter.PARKED:
                outcome.skipped[letter_id] = f"it is {letter.state}"
            else:
                letter.state = DeadLetter.DISCARDED
                letter.save(update_fields=["state"])
                DeadLetterAction.objects.create(letter=letter, action=DeadLetterAction.DISCARD, actor=actor,
                                                actor_name=actor_name, detail=reason[:2000])
                outcome.done.append(letter_id)
    return outcome


def _target(letter: DeadLetter, to: str) -> tuple[str, int]:
    ours = _redrivable()
    if letter.original_topic not in ours:
        raise TriageError(f"its original topic {letter.original_topic[:80]!r} is not one of ours")
    topic = letter.original_topic
    if to == "retry":
        prefix = settings.KAFKA_TOPIC_PREFIX
        topic = resolve(retry_topic(topic.removeprefix(prefix), 1)) if topic.startswith(prefix) else ""
        if topic not in ours:
            raise TriageError(f"{letter.original_topic} has no retry topics")
    return topic, (letter.original_partition or 0) % ours[topic]


def letters_redrive(*, ids: list[int], to: str, actor_name: str, actor=None) -> Outcome:
    """Publish each parked letter back (`to`: "original" or "retry", its first retry topic),
    exactly once (see the module's docstring); finishes interrupted redrives too."""
    if to not in ("original", "retry"):
        raise TriageError("redrive to 'original' or 'retry'")
    outcome = Outcome()
    producer = None
    for letter_id in ids:
        try:
            with transaction.atomic():  # step 1
                letter = DeadLetter.objects.select_for_update().filter(id=letter_id).first()
                if letter is None:
                    raise TriageError("no such letter")
                if letter.state in (DeadLetter.REDRIVEN, DeadLetter.DISCARDED):
                    raise TriageError(f"it is {letter.state}")
                if letter.state == DeadLetter.PARKED:
                    topic, partition = _target(letter, to)
                    letter.state, letter.redrive_topic, letter.redrive_partition = DeadLetter.REDRIVING, topic, partition
                    letter.redrive_scan_from = kafka.end_offset(topic, partition)
                    letter.save(update_fields=["state", "redrive_topic", "redrive_partition", "redrive_scan_from"])
                    DeadLetterAction.objects.create(letter=letter, action=DeadLetterAction.REDRIVE, actor=actor,
                                                    actor_name=actor_name, detail=f"to {topic}[{partition}]")
            producer = producer or Producer(kafka.producer_config(**{"linger.ms": 0}))
            if _publish_once(letter_id, producer, actor_name):
                outcome.done.append(letter_id)
            else:
                outcome.skipped[letter_id] = "another redrive finished it"
        except TriageError as exc:
            outcome.skipped[letter_id] = str(exc)
        except KafkaException as exc:
            outcome.skipped[letter_id] = f"Kafka: {exc.args[0].str() if exc.args else exc}; redrive it again later"
    return outcome


def _publish_once(letter_id: int, producer: Producer, actor_name: str) -> bool:
    """Step 2, under the row lock: find or produce the redriven record; False when the letter
    was finished by someone else meanwhile."""
    with transaction.atomic():
        letter = DeadLetter.objects.select_for_update().get(id=letter_id)
        if letter.state != DeadLetter.REDRIVING:
            return False
        redrive_id = f"{letter.topic}/{letter.partition}/{letter.offset}"
        offset = _find(letter.redrive_topic, letter.redrive_partition, letter.redrive_scan_from, redrive_id)
        if offset is None:
            headers = [(name, value.encode() if value is not None else None) for name, value in letter.headers
                       if not name.startswith(_DROPPED_ON_REDRIVE)]
            headers += [(REDRIVE_ID, redrive_id.encode()), ("dlq.redriven.by", actor_name.encode())]
            offset = _produce(producer, letter, headers)
        letter.state, letter.redriven_offset = DeadLetter.REDRIVEN, offset
        letter.save(update_fields=["state", "redriven_offset"])
        return True


def _produce(producer: Producer, letter: DeadLetter, headers: list) -> int:
    report = {}
    producer.produce(letter.redrive_topic, partition=letter.redrive_partition,
                     key=bytes(letter.key) if letter.key is not None else None,
                     value=bytes(letter.value) if letter.value is not None else None, headers=headers,
                     on_delivery=lambda error, message: report.update(error=error, message=message))
    producer.flush(30)
    if not report:
        raise TriageError("Kafka did not acknowledge the redrive in 30 s; redrive it again later")
    if report["error"] is not None:
        raise KafkaException(report["error"])
    return report["message"].offset()


def _find(topic: str, partition: int, start: int, redrive_id: str, timeout_s: float = 30.0) -> int | None:
    """The offset of the record carrying `redrive_id` in topic[partition] from `start` to its
    end now, or None."""
    consumer = Consumer(kafka.quiet_config(**{"group.id": f"dlq-redrive-{uuid.uuid4()}", "enable.auto.commit": False}))
    wanted = redrive_id.encode()
    deadline = time.monotonic() + timeout_s
    try:
        end = kafka.high_watermark(consumer, topic, partition)
        if end <= start:
            return None
        consumer.assign([TopicPartition(topic, partition, start)])
        while time.monotonic() < deadline:
            for message in consumer.consume(num_messages=500, timeout=1.0):
                if message.error() is None and (REDRIVE_ID, wanted) in (message.headers() or []):
                    return message.offset()
            if consumer.position([TopicPartition(topic, partition)])[0].offset >= end:
                return None
        raise TriageError(f"could not read {topic}[{partition}] to its end in {timeout_s:.0f} s; redrive it again later")
    finally:
        consumer.close()


def letter_payload(letter: DeadLetter) -> str:
    """The letter's value for people: pretty JSON when it is JSON, else the text, else bytes."""
    if letter.value is None:
        return "(no value)"
    raw = bytes(letter.value)
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except (UnicodeDecodeError, ValueError):
        return _text(raw)
