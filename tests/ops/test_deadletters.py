"""DLQ triage (polystack.ops.deadletters) on the real broker and database: every letter of every
DLQ indexed once, whatever it holds; the admins told, throttled; redrive published exactly once
however often it is asked for (twice, at once, or after a redrive cut short); discard with a
reason; all of it from the admin and from `manage.py dlq`."""
import json
import threading
from io import StringIO

import pytest
from django.core.management import call_command

from polystack.ops import deadletters
from polystack.ops.models import DeadLetter, DeadLetterAction
from polystack.streaming import kafka
from polystack.streaming.topics import REMINDER_EVENTS, REMINDER_EVENTS_DLQ, TODO_EVENTS_DLQ, resolve, retry_topic
from tests.helpers import consume_to_end, produce, unique, wait_until

ORIGINAL = {"todoId": "0b7c6a52-2d8e-4f7e-9b1a-3f5e8e9c1d2a", "n": 1}


def dlq_headers(*, topic: str, offset: int = 7, attempts: bytes = b"4") -> list:
    return [("correlationId", b"corr-7"), ("eventType", b"ReminderDue"),
            ("dlq.original.topic", topic.encode()), ("dlq.original.partition", b"1"),
            ("dlq.original.offset", str(offset).encode()), ("dlq.consumer.group", b"notification-consumer-group"),
            ("dlq.error.class", b"DeliveryFailedError"), ("dlq.error.message", b"451 try later"),
            ("dlq.failed.at", b"2026-11-27T10:00:00.000Z"), ("dlq.attempts", attempts)]


def park(value, headers) -> DeadLetter:
    """Produce one letter to reminder-events-dlq and index it as the indexer does."""
    return park_many([value], headers)[0]


def park_many(values: list, headers) -> list[DeadLetter]:
    dlq = resolve(REMINDER_EVENTS_DLQ)
    produce(dlq, values, headers=headers)
    raws = consume_to_end(dlq)
    deadletters.letters_index(raws)
    return [DeadLetter.objects.get(topic=dlq, offset=raw.offset()) for raw in raws[-len(values):]]


def redriven(topic: str = REMINDER_EVENTS) -> list:
    return [m for m in consume_to_end(resolve(topic)) if any(k == deadletters.REDRIVE_ID for k, _ in m.headers() or [])]


@pytest.mark.django_db(transaction=True)
def test_a_letter_is_indexed_once_with_what_its_headers_say(event_topics):
    letter = park(ORIGINAL, dlq_headers(topic=resolve(REMINDER_EVENTS)))
    assert (letter.original_topic, letter.original_partition, letter.original_offset) == (resolve(REMINDER_EVENTS), 1, 7)
    assert (letter.consumer_group, letter.error_class, letter.attempts) == (
        "notification-consumer-group", "DeliveryFailedError", 4)
    assert letter.correlation_id == "corr-7" and letter.state == DeadLetter.PARKED
    assert json.loads(deadletters.letter_payload(letter)) == ORIGINAL
    assert deadletters.letters_index(consume_to_end(resolve(REMINDER_EVENTS_DLQ))) == {}, "indexed again: nothing new"
    assert DeadLetter.objects.count() == 1
    [row] = [r for r in deadletters.stats() if r["topic"] == resolve(REMINDER_EVENTS_DLQ)]
    assert row["parked"] == 1 and row["oldestAgeSeconds"] >= 0


@pytest.mark.django_db(transaction=True)
def test_anything_a_dlq_holds_is_indexed_and_shown(event_topics):
    hostile = park(b"\xff\xfe not json \x00", [("dlq.original.partition", b"99999999999999999999999"),
                                              ("dlq.attempts", b"-3"), ("dlq.error.message", b"\x00\xff" * 10),
                                              ("empty", None), ("dlq.original.topic", b"x" * 1000)])
    assert hostile.original_partition is None and hostile.attempts is None
    assert len(hostile.original_topic) == 249 and "\x00" not in hostile.error_message
    assert "not json" in deadletters.letter_payload(hostile)
    outcome = deadletters.letters_redrive(ids=[hostile.id], to="original", actor_name="t")
    assert "not one of ours" in outcome.skipped[hostile.id], "a forged origin is redriven nowhere"


@pytest.mark.django_db(transaction=True)
def test_a_redrive_is_published_once_however_often_it_is_asked_for(event_topics):
    letter = park(ORIGINAL, dlq_headers(topic=resolve(REMINDER_EVENTS)))
    first = deadletters.letters_redrive(ids=[letter.id], to="original", actor_name="ann")
    again = deadletters.letters_redrive(ids=[letter.id], to="original", actor_name="bob")
    assert first.done == [letter.id] and again.skipped == {letter.id: "it is redriven"}
    [record] = redriven()
    assert (record.partition(), json.loads(record.value())) == (1, ORIGINAL), "to its original partition"
    headers = dict(record.headers())
    assert headers["correlationId"] == b"corr-7" and not any(k.startswith("dlq.error") for k in headers)
    letter.refresh_from_db()
    assert (letter.state, letter.redriven_offset) == (DeadLetter.REDRIVEN, record.offset())
    assert [(a.action, a.actor_name) for a in letter.actions.all()] == [("redrive", "ann")]


@pytest.mark.django_db(transaction=True)
def test_two_redrives_at_once_publish_once(event_topics):
    letters = park_many([{**ORIGINAL, "n": n} for n in range(5)], dlq_headers(topic=resolve(REMINDER_EVENTS)))
    ids = [letter.id for letter in letters]
    barrier = threading.Barrier(2)

    def press():
        from django.db import connection

        barrier.wait()
        try:
            deadletters.letters_redrive(ids=ids, to="original", actor_name="someone")
        finally:
            connection.close()

    pressers = [threading.Thread(target=press) for _ in range(2)]
    for presser in pressers:
        presser.start()
    for presser in pressers:
        presser.join(60)
    assert sorted(json.loads(m.value())["n"] for m in redriven()) == [0, 1, 2, 3, 4]
    assert DeadLetter.objects.filter(state=DeadLetter.REDRIVEN).count() == 5


@pytest.mark.django_db(transaction=True)
def test_a_redrive_cut_short_after_the_broker_took_it_is_not_published_again(event_topics):
    letter = park(ORIGINAL, dlq_headers(topic=resolve(REMINDER_EVENTS)))
    # Step 1 committed, the record produced and acknowledged, then the process died.
    topic = resolve(REMINDER_EVENTS)
    produce(topic, [{"someone": "else"}], partition=1)  # records before and after ours
    DeadLetter.objects.filter(pk=letter.pk).update(state=DeadLetter.REDRIVING, redrive_topic=topic,
                                                   redrive_partition=1, redrive_scan_from=kafka.end_offset(topic, 1))
    produce(topic, [ORIGINAL], partition=1,
            headers=[(deadletters.REDRIVE_ID, f"{letter.topic}/{letter.partition}/{letter.offset}".encode())])
    produce(topic, [{"someone": "else"}], partition=1)
    outcome = deadletters.letters_redrive(ids=[letter.id], to="original", actor_name="ann")
    assert outcome.done == [letter.id]
    assert len(redriven()) == 1, "found, not produced again"


@pytest.mark.django_db(transaction=True)
def test_a_letter_goes_to_its_first_retry_topic_when_asked(event_topics):
    letter = park(ORIGINAL, dlq_headers(topic=resolve(REMINDER_EVENTS)))
    assert deadletters.letters_redrive(ids=[letter.id], to="retry", actor_name="ann").done == [letter.id]
    assert len(redriven(retry_topic(REMINDER_EVENTS, 1))) == 1 and redriven() == []
    todo_letter = park(ORIGINAL, dlq_headers(topic=resolve("analytics-hourly")))
    assert "no retry topics" in deadletters.letters_redrive(ids=[todo_letter.id], to="retry",
                                                            actor_name="ann").skipped[todo_letter.id]


@pytest.mark.django_db(transaction=True)
def test_discarding_needs_a_reason_and_is_recorded(event_topics):
    letter = park(ORIGINAL, dlq_headers(topic=resolve(REMINDER_EVENTS)))
    with pytest.raises(deadletters.TriageError):
        deadletters.letters_discard(ids=[letter.id], reason="  ", actor_name="ann")
    assert deadletters.letters_discard(ids=[letter.id], reason="a test message", actor_name="ann").done == [letter.id]
    assert deadletters.letters_redrive(ids=[letter.id], to="original", actor_name="ann").skipped
    [action] = DeadLetterAction.objects.filter(letter=letter)
    assert (action.action, action.detail, action.actor_name) == ("discard", "a test message", "ann")


@pytest.mark.django_db(transaction=True)
def test_the_admin_lists_shows_redrives_and_discards(event_topics, admin_client, client, user_factory):
    letter = park(ORIGINAL, dlq_headers(topic=resolve(REMINDER_EVENTS)))
    other = park({**ORIGINAL, "n": 2}, dlq_headers(topic=resolve(REMINDER_EVENTS)))
    index = admin_client.get("/admin/").content.decode()
    assert "Dead letters parked, per DLQ" in index and resolve(REMINDER_EVENTS_DLQ) in index
    for query in ("", "?state__exact=parked", "?q=451", "?q=%00", f"?topic__exact={resolve(TODO_EVENTS_DLQ)}"):
        assert admin_client.get(f"/admin/ops/deadletter/{query}").status_code == 200, query
    page = admin_client.get(f"/admin/ops/deadletter/{letter.id}/change/").content.decode()
    assert "&quot;todoId&quot;" in page and "DeliveryFailedError" in page

    changelist = "/admin/ops/deadletter/"
    done = admin_client.post(changelist, {"action": "redrive_to_original", "_selected_action": [letter.id]}, follow=True)
    assert "1 letter(s) redriven" in done.content.decode()
    admin_client.post(changelist, {"action": "redrive_to_original", "_selected_action": [letter.id]})
    assert len(redriven()) == 1, "pressed twice, published once"

    ask = admin_client.post(changelist, {"action": "discard", "_selected_action": [other.id]})
    assert ask.status_code == 200 and "Reason" in ask.content.decode()
    admin_client.post(changelist, {"action": "discard", "_selected_action": [other.id], "confirm": "yes",
                                   "reason": "duplicate of #1"})
    assert DeadLetter.objects.get(pk=other.pk).state == DeadLetter.DISCARDED

    client.force_login(user_factory(username="not-staff"))
    assert client.get(changelist).status_code == 302, "staff only"
    client.force_login(user_factory(username="staff-without-rights", is_staff=True))
    assert client.get(changelist).status_code == 403, "staff with the right to look at letters only"
    assert client.post(changelist, {"action": "discard", "_selected_action": [letter.id], "confirm": "yes",
                                    "reason": "x"}).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_the_shell_command_does_the_same(event_topics):
    letter = park(ORIGINAL, dlq_headers(topic=resolve(REMINDER_EVENTS)))
    other = park({**ORIGINAL, "n": 2}, dlq_headers(topic=resolve(REMINDER_EVENTS)))

    def run(*args) -> str:
        out = StringIO()
        call_command("dlq", *args, stdout=out)
        return out.getvalue()

    assert f"{resolve(REMINDER_EVENTS_DLQ)}" in run("stats") and "2 parked" in run("stats")
    [row] = [r for r in json.loads(run("stats", "--json")) if r["topic"] == resolve(REMINDER_EVENTS_DLQ)]
    assert row["parked"] == 2 and row["oldestAgeSeconds"] >= 0
    assert str(letter.id) in run("list", "--topic", resolve(REMINDER_EVENTS_DLQ), "--state", "parked")
    assert '"todoId"' in run("show", str(letter.id))
    assert "1 letter(s) redriven" in run("redrive", str(letter.id))
    assert "1 letter(s) discarded" in run("discard", str(other.id), "--reason", "noise")
    with pytest.raises(SystemExit):
        run("redrive", str(letter.id))  # already redriven: exits 1, saying so
    assert len(redriven()) == 1


def test_the_indexer_role_indexes_every_dlq_and_tells_the_admins_once(roles, smtp, event_topics):
    for n in range(3):
        produce(resolve(REMINDER_EVENTS_DLQ), [{**ORIGINAL, "n": n}], headers=dlq_headers(topic=resolve(REMINDER_EVENTS)))
    produce(resolve(TODO_EVENTS_DLQ), [b"not json"])
    roles("runconsumer", "dlq-index", "--group-id", unique("dlq"),
          env={"ADMIN_EMAILS": "ops@example.test", "EMAIL_PORT": str(smtp.port)})
    wait_until(lambda: DeadLetter.objects.count() == 4, what="the four letters indexed")
    wait_until(lambda: len(smtp.messages) == 2, what="one email per DLQ topic")
    produce(resolve(REMINDER_EVENTS_DLQ), [{**ORIGINAL, "n": 9}], headers=dlq_headers(topic=resolve(REMINDER_EVENTS)))
    wait_until(lambda: DeadLetter.objects.count() == 5, what="the fifth letter")
    subjects = sorted(email["Subject"] for _, email in smtp.messages)
    assert len(smtp.messages) == 2, f"throttled: {subjects}"
    assert any("3 new dead letter(s)" in subject or "new dead letter" in subject for subject in subjects)
    assert all(recipients == ["ops@example.test"] for recipients, _ in smtp.messages)
