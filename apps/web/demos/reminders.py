"""Scheduled events, retries and a dead-letter queue: a reminder due in a few seconds fires while
the mail server is down; its email walks the retry topics into the DLQ, and a redrive delivers it
once the server is back."""
import json
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from confluent_kafka import Consumer, TopicPartition
from django.conf import settings

from apps.notifications.models import EMAIL, IN_APP, Notification
from apps.reminders.models import Reminder
from apps.todos import reminder_events
from apps.todos.events import iso
from apps.web.demos import processes
from apps.web.demos.base import Api, DemoError, Show, demo_user, wait_for
from polystack.ops import deadletters
from polystack.ops.models import DeadLetter
from polystack.streaming import kafka
from polystack.streaming.topics import REMINDER_EVENTS, REMINDER_EVENTS_DLQ, resolve, retry_topic

TITLE = "scheduled events: a reminder fires, its email walks the retry topics into the DLQ, a redrive sends it"
WATCH = ("the reminder's state in the due table, each retry topic the failed email goes through (with the "
         "not-before time and the error, from the messages' own headers), the dead letter, and its redrive")
USER = "demo-reminders"
LEAD_S = 4.0  # the reminder is due this long after the API takes it
RETRIES = 3
WALK_TIMEOUT_S = 180.0  # the retry delays are 2, 10 and 60 s (times STREAMING_RETRY_DELAY_SCALE)


def run(show: Show, options) -> None:
    user, token = demo_user(USER)
    api = Api(options.url, token)
    try:
        mail = processes.find(processes.mail_server(), timeout=options.timeout_s)
    except processes.RoleNotFoundError as exc:
        raise DemoError(str(exc)) from None
    topics = [resolve(retry_topic(REMINDER_EVENTS, n)) for n in range(1, RETRIES + 1)] + [resolve(REMINDER_EVENTS_DLQ)]
    watcher = _Watcher(topics + [resolve(REMINDER_EVENTS)])
    todo_id = None
    try:
        show.step(f"Stop the mail server ({mail.how}): every email fails from now on.")
        mail.stop()
        try:
            show.step(f"As {USER}, make a todo due in an hour with a reminder in {LEAD_S:g} s.")
            remind_at = datetime.now(UTC) + timedelta(seconds=LEAD_S)
            todo_id = api.ok("POST", "/api/todos/", {
                "title": "Call the plumber", "dueDate": iso(remind_at + timedelta(hours=1)),
                "reminderTimes": [iso(remind_at)]})["id"]
            reminder = wait_for(lambda: Reminder.objects.filter(todo_id=todo_id).first(), timeout=options.timeout_s,
                                what="the reminders role to arm the reminder")
            show.fact("armed", f"{reminder.reminder_type} reminder, state {reminder.state}, due at "
                               f"{reminder.remind_at:%H:%M:%S.%f}"[:-3])
            show.watch("the scheduler sleeps until then, fires the reminder and writes ReminderDue to the outbox.")
            fired = wait_for(lambda: Reminder.objects.filter(pk=reminder.pk, state=Reminder.FIRED).first(),
                             timeout=options.timeout_s + LEAD_S, what="the scheduler to fire the reminder")
            show.fact("fired", f"at {fired.fired_at:%H:%M:%S.%f}"[:-3] + f", {_late_by(fired)} after its time")

            show.step("The notifications role sends the in-app reminder; the email fails, and the event goes "
                      "to the retry topics, each later than the last, then to the DLQ.")

            def walked(record: dict) -> None:
                headers = record["headers"]
                if record["topic"] == topics[-1]:
                    show.fact("dead letter", f"{record['topic']} [{record['partition']}] @{record['offset']} after "
                                             f"{headers.get('dlq.attempts')} attempts: {headers.get('dlq.error.class')}")
                elif record["topic"] in topics:
                    show.fact(f"attempt {headers.get('retry.attempts')}",
                              f"{record['topic']} [{record['partition']}] @{record['offset']}, not before "
                              f"{_clock(headers.get('retry.not-before'))}: {_error(headers)}")

            watcher.read_until(lambda: any(r["topic"] == topics[-1] for r in watcher.seen), todo_id, WALK_TIMEOUT_S,
                               on_record=walked)
            rows = {row.channel: row for row in Notification.objects.filter(todo_id=todo_id, recipient=user)}
            show.fact("in-app notification", rows[IN_APP].status if IN_APP in rows else "none (switched off)")
            if EMAIL in rows:
                show.fact("email notification", f"{rows[EMAIL].status} after {rows[EMAIL].attempts} attempts")

            show.step("The dlq-index role indexes the letter for triage (the admin's Dead letters page, "
                      "`manage.py dlq list`).")
            letter = wait_for(lambda: _letter(todo_id), timeout=options.timeout_s, what="the dlq-index role")
            show.fact("letter", f"#{letter.id}, {letter.state}, from {letter.original_topic} "
                                f"[{letter.original_partition}] @{letter.original_offset}")
        finally:
            mail.restart()
        show.step("Start the mail server again, and redrive the letter to its original topic (as the admin's "
                  "action does: published exactly once, however often it is pressed).")
        processes.wait_restarted(mail, options.timeout_s)
        wait_for(_mail_server_listens, timeout=options.timeout_s, what="the mail server to listen again")
        outcome = deadletters.letters_redrive(ids=[letter.id], to="original", actor_name=f"manage.py demo ({USER})")
        show.fact("redrive", outcome.summary("redriven"))
        wait_for(lambda: Notification.objects.filter(todo_id=todo_id, channel=EMAIL, status=Notification.Status.SENT)
                 .exists() or EMAIL not in rows, timeout=options.timeout_s, what="the redriven email to be sent")
        watcher.read_until(lambda: _sent_channels(watcher) >= set(rows), todo_id, options.timeout_s)
        show.fact("email notification", Notification.objects.get(todo_id=todo_id, channel=EMAIL).status
                  if EMAIL in rows else "none (switched off)")
        show.fact("ReminderSent events", ", ".join(sorted(_sent_channels(watcher))))
        show.fact("letter now", DeadLetter.objects.get(pk=letter.id).state)
    finally:
        watcher.close()
        show.step("Clean up: delete the demo's todo.")
        if todo_id:
            api.call("DELETE", f"/api/todos/{todo_id}/")
            show.say("deleted 1 todo")


def _clock(epoch_ms: str | None) -> str:
    try:
        return datetime.fromtimestamp(int(epoch_ms) / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]
    except (TypeError, ValueError):
        return "?"


def _error(headers: dict) -> str:
    """The failure, as the retry headers give it (the end of the message: its cause)."""
    message = headers.get("retry.error.message", "")
    return message if len(message) <= 90 else "…" + message[-90:]


def _mail_server_listens() -> bool:
    try:
        with socket.create_connection((settings.EMAIL_HOST, settings.EMAIL_PORT), timeout=2):
            return True
    except OSError:
        return False


def _late_by(reminder: Reminder) -> str:
    return f"{(reminder.fired_at - reminder.remind_at).total_seconds():.2f} s"


def _letter(todo_id: str) -> DeadLetter | None:
    for letter in DeadLetter.objects.filter(original_topic=resolve(REMINDER_EVENTS)).order_by("-id")[:50]:
        try:
            if json.loads(bytes(letter.value))["data"]["todoId"] == todo_id:
                return letter
        except (ValueError, KeyError, TypeError):
            continue
    return None


def _sent_channels(watcher: "_Watcher") -> set[str]:
    """The channels of the ReminderSent events seen (the watcher keeps the demo's todo's only)."""
    return {str(r["event"]["data"].get("channel")) for r in watcher.seen
            if r["event"].get("eventType") == reminder_events.REMINDER_SENT}


class _Watcher:
    """Reads the topics from their ends as they are now: the demo's records, as they arrive."""

    def __init__(self, topics: list[str]):
        self.consumer = Consumer(kafka.quiet_config(**{"group.id": f"demo-reminders-{time.time_ns()}",
                                                       "enable.auto.commit": False}))
        metadata = self.consumer.list_topics(timeout=10)
        positions = []
        for topic in topics:
            if topic not in metadata.topics:
                raise DemoError(f"topic {topic} does not exist: run `manage.py ensuretopics`")
            for partition in metadata.topics[topic].partitions:
                end = kafka.end_offset(topic, partition)
                positions.append(TopicPartition(topic, partition, end))
        self.consumer.assign(positions)
        self.seen: list[dict] = []

    def read_until(self, done: Callable[[], bool], todo_id: str, timeout: float,
                   on_record: Callable[[dict], None] = lambda record: None) -> None:
        """Read the records of the demo's todo as they arrive (into `seen`) until done() holds."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                watched = ", ".join(sorted({tp.topic for tp in self.consumer.assignment()}))
                raise DemoError(f"gave up after {timeout:.0f} s watching {watched}")
            message = self.consumer.poll(0.5)
            if message is None or message.error():
                continue
            try:
                event = json.loads(message.value())
            except (TypeError, ValueError):
                continue  # anyone may write to a topic: not ours to show
            if not isinstance(event, dict) or not isinstance(event.get("data"), dict) \
                    or event["data"].get("todoId") != todo_id:
                continue
            record = {"topic": message.topic(), "partition": message.partition(), "offset": message.offset(),
                      "headers": {k: (v or b"").decode(errors="replace") for k, v in message.headers() or []},
                      "event": event}
            self.seen.append(record)
            on_record(record)

    def close(self) -> None:
        self.consumer.close()
