"""Each demo (`manage.py demo <name> --fast`) runs to its end against real roles, and what it
prints is true: its numbers are checked against the system (the topics, the tables, the API)."""
import io
import json
import os
import re
import signal
import sys
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from apps.analytics.models import LateEvent
from apps.notifications.models import Notification
from apps.projections.models import TodoView
from apps.reminders.models import Reminder
from apps.sync.models import Device, SyncSettings
from apps.web import demos
from polystack.ops.models import DeadLetter
from polystack.streaming.topics import REMINDER_EVENTS, REMINDER_EVENTS_DLQ, TODO_EVENTS, resolve, retry_topic
from tests import helpers
from tests.sync.conftest import records


def run_demo(settings, name: str, web: str, *args: str) -> tuple[str, dict[str, str]]:
    """The demo's output, and its facts (`• label: value`) by label."""
    settings.DEBUG = True  # the demos are refused outside DEBUG
    out = io.StringIO()
    call_command("demo", name, "--url", web, "--fast", *args, stdout=out)
    output = out.getvalue()
    print(output)  # shown when the test fails
    return output, dict(re.findall(r"^ +• (.+?): (.*)$", output, re.MULTILINE))


def test_the_list_names_every_demo_with_what_it_shows():
    out = io.StringIO()
    call_command("demo", "--list", stdout=out)
    for name in demos.DEMOS:
        assert re.search(rf"^{name} +{re.escape(demos.get(name).TITLE)}$", out.getvalue(), re.MULTILINE)


def test_a_demo_is_refused_outside_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="local use only"):
        call_command("demo", "replay", stdout=io.StringIO())


def test_a_demo_without_the_system_says_so(settings, db):
    settings.DEBUG = True
    with pytest.raises(CommandError, match=r"cannot reach the web role at http://127.0.0.1:9 .*make run"):
        call_command("demo", "replay", "--url", "http://127.0.0.1:9", "--fast", stdout=io.StringIO())


def test_replay_rebuilds_the_same_tables_while_the_api_answers(settings, web, pipeline):
    output, facts = run_demo(settings, "replay", web)

    events = [json.loads(message.value()) for message in helpers.consume_to_end(resolve(TODO_EVENTS))]
    before_cleanup = [e for e in events if e["eventType"] != "TodoDeleted"]
    assert len(before_cleanup) == 6 and len(events) == 9, "3 todos made, 3 changed, 3 deleted by the clean-up"
    assert facts["events replayed"] == "6"
    assert facts["events in the read tables"] == "6"
    assert facts["todos in the read tables"] == "3"
    assert facts["checksum before"] == facts["checksum after"]
    assert int(facts["API reads during the rebuild"]) > 0
    assert facts["API reads that missed a todo"] == "0"
    assert facts["the demo's todos unchanged"] == "yes"
    assert "rebuilding:" in output, "the rebuild's progress is shown"
    helpers.wait_until(lambda: TodoView.objects.filter(deleted_at__isnull=True).count() == 0,
                       what="the clean-up's deletions projected")


def test_fanout_stops_notifications_while_the_others_serve_and_notifies_once(settings, web, pipeline, roles,
                                                                              smtp):
    roles("runconsumer", "realtime", "--group-id", helpers.unique("realtime"))
    group = helpers.unique("notifications")
    # Under a supervisor, as `make run` has it, in a session of its own: killing the session at
    # the end kills the role too, which outlives a supervisor killed alone.
    supervisor = roles("--name", "notifications", "--backoff", "0.2", "--", sys.executable, "manage.py",
                       "runconsumer", "notifications", "--group-id", group, module="polystack.ops.supervise",
                       env={"EMAIL_PORT": str(smtp.port), "STREAMING_RETRY_DELAY_SCALE": "0.05"},
                       start_new_session=True)
    try:
        output, facts = run_demo(settings, "fanout", web, "--group", f"notifications={group}")
    finally:
        os.killpg(supervisor.pid, signal.SIGKILL)

    assert re.fullmatch(r"pid \d+, under its supervisor \(pid \d+\)", facts["notifications role"])
    assert facts[f"members of {group}"] == "0"
    assert facts[f"lag of {group} with the role down"] == "6", "three todos made and assigned: six events"
    assert facts["todos the API shows assigned to the teammate (the projection)"] == "3"
    assert facts["live frames the teammate's socket got (realtime)"] == "6"
    assert facts["notifications for the teammate so far"] == "0"
    old = re.search(r"pid (\d+)", facts["notifications role"])[1]
    assert facts["notifications role is back"] != f"pid {old}", "a new process"
    assert facts[f"lag of {group} after the restart"] == "0"
    assert facts["Email notifications sent"] == "3" and facts["In-app notifications sent"] == "3"
    assert facts["rows tried more than once (a retry or a resend)"] == "0"
    to_teammate = [m for rcpts, m in smtp.messages if rcpts == ["demo-fanout-teammate@polystack.localhost"]]
    assert len(to_teammate) == 3, "three emails, none twice"


def test_windows_open_update_close_and_a_late_event_is_recorded(settings, roles, tmp_path):
    group = helpers.unique("analytics")
    roles("runconsumer", "analytics", "--group-id", group, "--state-dir", str(tmp_path / "state"))
    roles("runconsumer", "analytics-sink", "--group-id", group + "-sink")

    output, facts = run_demo(settings, "windows", "http://127.0.0.1:9")  # it needs no web role

    user = get_user_model().objects.get(username__startswith="demo-windows-")
    assert not user.is_active, "cleaned up"
    with connection.cursor() as cursor:
        cursor.execute("SELECT window_name, window_start, window_end, metric, sum(value) FROM analytics_window "
                       "WHERE owner_id = %s GROUP BY 1, 2, 3, 4", [user.pk])
        rows = {(name, start, metric): value for name, start, end, metric, value in cursor.fetchall()}
    hour = min(start for name, start, metric in rows if name == "hourly")
    assert hour.hour == 10
    # The seven events: 10:10, 10:40, 10:59:59.999, 11:00, 10:30 (late, inside the grace), 11:15,
    # 10:20 (beyond it: not in its hour).
    assert facts["hour H (10:00–11:00) created"] == str(rows[("hourly", hour, "created")]) == "4"
    assert facts["hour H+1 (11:00–12:00) created"] == str(rows[("hourly", hour + timedelta(hours=1), "created")]) == "2"
    assert facts["the day created"] == str(rows[("daily", hour.replace(hour=0), "created")]) == "7"
    late = list(LateEvent.objects.filter(owner_id=user.pk).values_list("window_name", "occurred_at"))
    # 10:20 is late for its hour and its sliding window; 10:30 for its sliding window only (it
    # ends at 10:30, more than the grace behind event time, 11:00).
    assert sorted(late) == [("hourly", hour + timedelta(minutes=20)), ("sliding", hour + timedelta(minutes=20)),
                            ("sliding", hour + timedelta(minutes=30))]
    assert facts["late events recorded"] == "3"
    assert re.search(r"event 7 late for the hourly window 10:00–11:00: by 45\.0 min", output)
    # The sliding window of the 10:59:59.999 event holds the three events of the hour before it.
    assert "sliding  60 min to 10:59:59          3 events in it" in output


def test_reminders_fires_walks_the_retry_topics_into_the_dlq_and_a_redrive_sends_it(settings, web, pipeline, roles):
    port = helpers.free_port()
    settings.EMAIL_PORT = port  # the demo finds the mail server by it
    mail = roles("--name", "mail", "--backoff", "0.2", "--", sys.executable, "-m", "aiosmtpd", "-n", "-l",
                 f"127.0.0.1:{port}", "-c", "aiosmtpd.handlers.Sink", module="polystack.ops.supervise",
                 start_new_session=True)
    try:
        roles("runconsumer", "reminders", "--group-id", helpers.unique("reminders"))
        roles("runscheduler")
        roles("runconsumer", "notifications", "--group-id", helpers.unique("notifications"),
              env={"EMAIL_PORT": str(port), "STREAMING_RETRY_DELAY_SCALE": "0.05"})
        roles("runconsumer", "dlq-index", "--group-id", helpers.unique("dlq"))
        output, facts = run_demo(settings, "reminders", web)
    finally:
        os.killpg(mail.pid, signal.SIGKILL)

    user = get_user_model().objects.get(username="demo-reminders")
    [reminder] = Reminder.objects.filter(owner_id=user.pk)
    assert reminder.state == Reminder.FIRED
    assert facts["fired"].startswith(f"at {reminder.fired_at:%H:%M:%S.%f}"[:-3])
    assert [facts[f"attempt {n}"].split(" [")[0] for n in (1, 2, 3)] == [
        resolve(retry_topic(REMINDER_EVENTS, n)) for n in (1, 2, 3)]
    assert "ConnectionRefusedError: [Errno 111] Connection refused" in facts["attempt 1"]
    assert facts["dead letter"].startswith(resolve(REMINDER_EVENTS_DLQ))
    assert facts["dead letter"].endswith("after 4 attempts: DeliveryFailedError")
    [letter] = DeadLetter.objects.all()
    assert facts["letter"].startswith(f"#{letter.id}, parked, from {resolve(REMINDER_EVENTS)}")
    assert facts["letter now"] == letter.state == DeadLetter.REDRIVEN
    email = Notification.objects.get(todo_id=reminder.todo_id, channel="email")
    assert facts["email notification"] == email.status == "sent"
    assert email.attempts == 5, "four failed, the redrive's went out"
    assert facts["in-app notification"] == "sent"
    assert facts["ReminderSent events"] == "email, in_app"
    sent = [json.loads(m.value()) for m in helpers.consume_to_end(resolve(REMINDER_EVENTS))]
    assert sorted(e["data"]["channel"] for e in sent if e["eventType"] == "ReminderSent") == ["email", "in_app"]


def test_sync_two_devices_converge_under_each_policy(settings, synced):
    output, facts = run_demo(settings, "sync", synced)

    assert "'Plan the trip', priority medium" in facts["the phone after its first sync (a snapshot)"]
    assert facts["the phone shows"].endswith("description 'Pack light', 1 change waiting")
    assert "description ''" in facts["the server has"], "the phone's change waits in its queue"
    assert facts["both fields kept, on the server"] == "'Plan the trip', priority high, description 'Pack light'"
    expected = {"lww": ("title", "Trip to Oslo"), "merge": ("priority", "urgent"),
                "manual": ("title", "Trip to Porto and Lisbon")}
    for policy, (field, value) in expected.items():
        for where in ("server", "laptop", "phone"):
            assert facts[f"{field} on the {where} ({policy})"] == value, (policy, where)
        assert facts[f"open conflicts ({policy})"] == "0"
    assert facts["open conflict"] == "title: 'Trip to Porto' (the phone) vs 'Trip to Lisbon' (kept)"
    assert facts["conflicts the laptop holds"] == "1"
    assert "its priority lost to a concurrent change (kept 'urgent')" in output
    # What the server kept is what the events say, and the demo's clean-up ran.
    user = get_user_model().objects.get(username="demo-sync")
    assert not Device.objects.filter(user=user).exists()
    assert SyncSettings.objects.filter(user=user).values_list("conflict_policy", flat=True).first() in (None, "lww")


def test_exactly_once_kill_mid_transaction_counts_and_a_fenced_zombie(settings, roles, sync, tmp_path):
    roles("runrelay")
    # The coordinator under a supervisor, as `make run` has it, in a session of its own.
    supervisor = roles("--name", "sync", "--backoff", "0.2", "--", sys.executable, "manage.py", "runconsumer",
                       "sync", "--group-id", sync.group, "--instance", "0", "--state-dir", str(tmp_path / "state"),
                       module="polystack.ops.supervise", start_new_session=True)
    try:
        output, facts = run_demo(settings, "exactly-once", "http://127.0.0.1:9", "--group", f"sync={sync.group}")
    finally:
        os.killpg(supervisor.pid, signal.SIGKILL)

    made = int(facts["todos made"])
    assert int(facts["records written in the open transaction when killed"]) > 0
    written = [r for r in records(committed=False) if r["event"]["eventType"] == "TodoCreated"]
    shown = [r for r in records(committed=True) if r["event"]["eventType"] == "TodoCreated"]
    # The fencing step made one more todo after the count.
    assert int(facts["records a read_committed reader reads"]) == made == len(shown) - 1
    assert facts["(event, recipient) pairs a read_committed reader reads more than once"] == "0"
    assert len({r["event"]["eventId"] for r in shown}) == len(shown), "each once"
    assert int(facts["records a read_uncommitted reader reads"]) > made, "the killed transaction's, aborted, too"
    assert int(facts["(event, recipient) pairs it reads more than once"]) > 0
    assert len(written) > len(shown)
    zombie, successor = re.fullmatch(r"pid (\d+), gone; pid (\d+) took its slot", facts["the fenced coordinator"]).groups()
    assert zombie != successor
    assert facts["our producer"].startswith("fenced (") and "fenced" in facts["our producer"][8:]
    [log] = tmp_path.glob("role-*--name-sync.log")
    assert "fatally" in log.read_text(), "the coordinator said why it stopped: fenced"
