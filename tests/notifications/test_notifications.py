"""Notifications end to end: relay, projection, `runconsumer notifications` sending over a real
SMTP server on loopback, retrying from the retry topics when it refuses."""
import pytest

from apps.notifications.models import Notification
from polystack.streaming.topics import TODO_EVENTS, resolve, retry_topic
from tests.factories import teammates
from tests.helpers import api_client, caught_up, consume_to_end, stop, unique, wait_until


@pytest.fixture
def pipeline(roles, notifier):
    roles("runrelay")
    roles("runconsumer", "projections", "--group-id", unique("projection"))
    group = unique("notifications")
    return {"group": group, "notifications": notifier(group)}


@pytest.fixture
def people(user_factory):
    people = {name: user_factory(username=name, email=f"{name}@example.test") for name in ("alice", "bob", "carol")}
    teammates(people["alice"], people["bob"], people["carol"])  # so they may assign each other todos
    return people


def create(user, title: str) -> str:
    answer = api_client(user).post("/api/todos/", {"title": title}, format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()["id"]


def command(user, todo_id: str, verb: str, body: dict | None = None) -> None:
    answer = api_client(user).post(f"/api/todos/{todo_id}/{verb}/", body or {}, format="json")
    assert answer.status_code == 200, answer.content


def sent(recipient, **filters) -> list[Notification]:
    return list(Notification.objects.filter(recipient=recipient, status="sent", **filters).order_by("id"))


def test_an_assignment_notifies_the_assignee_by_email_and_in_app_once(pipeline, people, smtp):
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    todo = create(alice, "Write the & report")
    command(alice, todo, "assign", {"assignedTo": str(bob.pk)})

    wait_until(lambda: len(sent(bob)) == 2, what="bob's email and in-app notification sent")
    wait_until(lambda: smtp.messages, what="the email at the SMTP server")
    (recipients, email), = smtp.messages
    assert recipients == ["bob@example.test"]
    assert email["Subject"] == "alice assigned you “Write the & report”"
    assert "alice assigned you the todo “Write the & report”" in email.get_body(("plain",)).get_content()
    assert "<strong>“Write the &amp; report”</strong>" in email.get_body(("html",)).get_content()

    feed = api_client(bob).get("/api/notifications/").json()
    assert feed["unreadCount"] == 1
    assert {(n["channel"], n["eventType"], n["todoId"]) for n in feed["results"]} == {
        ("email", "TodoAssigned", todo), ("in_app", "TodoAssigned", todo)}
    assert api_client(alice).get("/api/notifications/").json()["count"] == 0, "the actor is not told"
    in_app = next(n for n in feed["results"] if n["channel"] == "in_app")
    assert api_client(carol).post(f"/api/notifications/{in_app['id']}/read/").status_code == 404
    assert api_client(bob).post(f"/api/notifications/{in_app['id']}/read/").json()["unreadCount"] == 0


def test_the_rules_and_each_users_preferences_decide_who_hears_what(pipeline, people, smtp, user_factory):
    alice, bob = people["alice"], people["bob"]
    prefs = api_client(bob).put("/api/notifications/preferences/", {"preferences": [
        {"category": "priority", "channel": "email", "enabled": False}]}, format="json")
    assert prefs.status_code == 200
    assert {"category": "priority", "label": "A todo of yours made urgent", "channel": "email",
            "enabled": False} in prefs.json()["preferences"]
    bad = api_client(bob).put("/api/notifications/preferences/", {"preferences": [
        {"category": "gossip", "channel": "pigeon", "enabled": "maybe"}]}, format="json")
    assert bad.status_code == 400
    assert set(bad.json()["preferences"]["0"]) == {"category", "channel", "enabled"}, "each field named"

    todo = create(alice, "Ship it")
    command(alice, todo, "prioritize", {"priority": "high"})    # not urgent: nobody
    command(alice, todo, "assign", {"assignedTo": str(bob.pk)})  # bob: email + in-app
    command(alice, todo, "prioritize", {"priority": "urgent"})  # bob: in-app only (his choice)
    command(bob, todo, "complete")                               # alice: email + in-app
    mine = create(alice, "Mine")
    command(alice, mine, "complete")                             # by the owner: nobody

    wait_until(lambda: len(sent(alice)) == 2, what="alice told of the completion")
    wait_until(lambda: len(sent(bob)) == 3, what="bob told of the assignment and the urgency")
    assert [(n.event_type, n.channel) for n in sent(bob)] == [
        ("TodoAssigned", "email"), ("TodoAssigned", "in_app"), ("TodoPrioritized", "in_app")]
    assert {(n.event_type, n.channel) for n in sent(alice)} == {("TodoCompleted", "email"), ("TodoCompleted", "in_app")}
    wait_until(lambda: len(smtp.messages) == 2, what="two emails")
    assert sorted(r[0] for r, _ in smtp.messages) == ["alice@example.test", "bob@example.test"]

    no_address = user_factory(username="no-address")  # in-app only: an email could never be sent
    teammates(alice, no_address)
    other = create(alice, "No inbox")
    command(alice, other, "assign", {"assignedTo": str(no_address.pk)})
    wait_until(lambda: sent(no_address), what="the in-app notification")
    assert [n.channel for n in Notification.objects.filter(recipient=no_address)] == ["in_app"]


def test_a_stopped_notifier_catches_up_and_a_redelivery_notifies_nobody_twice(pipeline, roles, notifier, people,
                                                                              smtp):
    alice, bob = people["alice"], people["bob"]
    first = create(alice, "before the outage")
    command(alice, first, "assign", {"assignedTo": str(bob.pk)})
    wait_until(lambda: len(sent(bob)) == 2, what="the first assignment delivered")

    code, _, err = stop(pipeline["notifications"])
    assert code == 0, err
    # The other roles go on: commands are answered from the projection as before.
    second = create(alice, "during the outage")
    command(alice, second, "assign", {"assignedTo": str(bob.pk)})
    assert Notification.objects.filter(todo_id=second).count() == 0

    notifier(pipeline["group"])  # resumes from its commits
    wait_until(lambda: len(sent(bob)) == 4, what="the outage's assignment delivered after the restart")

    # The same events delivered all over again: a new group reads the topic from its start.
    replay_group = unique("replay")
    replayer = notifier(replay_group)
    wait_until(lambda: caught_up(replay_group, resolve(TODO_EVENTS)), what="the replay through every event")
    stop(replayer)
    assert Notification.objects.filter(recipient=bob).count() == 4
    wait_until(lambda: len(smtp.messages) >= 2, what="two emails")
    assert len(smtp.messages) == 2, "one email per assignment, however often the events came"


def test_a_refused_email_is_retried_from_the_retry_topics_until_the_mail_server_answers(roles, notifier, people, smtp):
    roles("runrelay")
    roles("runconsumer", "projections", "--group-id", unique("projection"))
    smtp.stop()  # the mail server is down
    notifier()
    alice, bob = people["alice"], people["bob"]
    todo = create(alice, "mail later")
    command(alice, todo, "assign", {"assignedTo": str(bob.pk)})

    email = lambda: Notification.objects.get(recipient=bob, channel="email")  # noqa: E731
    # The first attempt, then the one from todo-events-retry-1 (0.1 s later): the row waits for the next.
    wait_until(lambda: Notification.objects.filter(recipient=bob, channel="email", attempts__gte=2,
                                                   status="pending").exists(),
               what="two failed attempts, the row waiting for its retry")
    assert "Connection refused" in email().last_error or "Errno" in email().last_error
    assert sent(bob, channel="in_app"), "in-app delivery does not wait for the mail server"
    smtp.start()
    wait_until(lambda: email().status == "sent", timeout=60, what="the email sent once the server is back")
    assert len(smtp.messages) == 1
    assert [n.channel for n in sent(bob)] == ["email", "in_app"], "the in-app one was not sent again"
    [retried] = consume_to_end(resolve(retry_topic(TODO_EVENTS, 1)))
    assert dict(retried.headers())["retry.attempts"] == b"1"


def test_delivery_holds_no_row_lock_or_transaction_while_smtp_is_slow(transactional_db, user_factory, settings):
    """Claim (committed), send, record: a slow SMTP server holds no database lock."""
    import threading
    import uuid

    import psycopg

    from apps.notifications.models import Notification
    from apps.notifications.delivery import deliver
    from polystack import db
    from tests.helpers import MailInbox, free_port

    class SlowInbox(MailInbox):
        def __init__(self, port):
            super().__init__(port)
            self.entered, self.release = threading.Event(), threading.Event()

        async def handle_DATA(self, server, session, envelope):
            import asyncio

            self.entered.set()
            await asyncio.to_thread(self.release.wait, 30)  # the SMTP server thinks until released
            return await super().handle_DATA(server, session, envelope)

    inbox = SlowInbox(free_port())
    inbox.start()
    settings.EMAIL_PORT = inbox.port
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"  # the test runner puts locmem here
    row = Notification.objects.create(recipient=user_factory(email="b@example.org"), event_id=uuid.uuid4(),
                                      event_type="TodoAssigned", category="assignment", channel="email",
                                      todo_id=uuid.uuid4(), subject="s", body="b")
    outcome = []
    def send():
        from django.db import connection

        try:
            outcome.append(deliver(row.id))
        finally:
            connection.close()  # this thread's own: the test database is dropped at the end

    sender = threading.Thread(target=send)
    try:
        sender.start()
        assert inbox.entered.wait(30)
        with psycopg.connect(db.conninfo(), autocommit=True) as other:
            status = other.execute("SELECT status FROM notifications_notification WHERE id = %s FOR UPDATE NOWAIT",
                                   [row.id]).fetchone()[0]
            assert status == "sending", "claimed, committed, and not locked while the SMTP server thinks"
            idle = other.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' "
                                 "AND datname = current_database()").fetchone()[0]
            assert idle == 0
    finally:
        inbox.release.set()
        sender.join(30)
        inbox.stop()
    assert outcome == [True]
    row.refresh_from_db()
    assert (row.status, row.attempts, len(inbox.messages)) == ("sent", 1, 1)
