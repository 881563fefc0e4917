"""The chaos checker judges, fed made-up histories: each invariant holds for a clean one and fails,
naming the culprit, for each way it can be broken. A checker that cannot fail proves nothing."""
import uuid

from chaos.checker import (Evidence, commands_have_their_events, device_records_once, notifications_once,
                           reminders_once, sockets_caught_up)

ALICE, BOB = "1", "2"


def event(todo: str, version: int, cid: str, users=(ALICE,)) -> dict:
    return {"eventId": str(uuid.uuid4()), "aggregateId": todo, "aggregateVersion": version, "correlationId": cid,
            "metadata": {"affectedUsers": list(users)}}


def command(cid: str, todo: str, version: int | None, *, status: int = 200, events: int = 1, action="update") -> dict:
    return {"cid": cid, "todo": todo, "version": version, "status": status, "events": events, "action": action}


def history():
    """A create with a schedule (two events), an update, a delete answered 204, on one todo."""
    todo = str(uuid.uuid4())
    events = [event(todo, 1, "c1"), event(todo, 2, "c1"), event(todo, 3, "u1"), event(todo, 4, "d1")]
    commands = [command("c1", todo, 2, status=201, events=2, action="create"), command("u1", todo, 3),
                command("d1", todo, 4, status=204, action="delete")]
    return todo, events, commands


def evidence(events, commands=(), sockets=None) -> Evidence:
    return Evidence(commands=list(commands), records=events, sockets=sockets or {})


def test_commands_hold_for_a_clean_history_and_count_unanswered_ones_applied():
    todo, events, commands = history()
    commands.append(command("lost", todo, None, status=0))
    events.append(event(todo, 5, "lost"))
    verdict = commands_have_their_events(evidence(events, commands), relay_killed=True)
    assert verdict.held, verdict.evidence
    assert "1 unanswered (1 of them applied)" in verdict.evidence


def test_a_duplicated_event_fails_the_commands():
    todo, events, commands = history()
    events.insert(3, dict(events[2], eventId=str(uuid.uuid4())))  # the update published twice
    verdict = commands_have_their_events(evidence(events, commands), relay_killed=True)
    assert not verdict.held and "u1" in verdict.evidence and todo in verdict.evidence


def test_a_record_repeated_whole_is_excused_only_when_the_relay_was_killed():
    todo, events, commands = history()
    events.insert(3, dict(events[2]))  # the same event again: the relay's at-least-once window
    assert commands_have_their_events(evidence(events, commands), relay_killed=True).held
    assert not commands_have_their_events(evidence(events, commands), relay_killed=False).held
    events[3] = dict(events[2], correlationId="forged")  # one eventId, another content: never
    verdict = commands_have_their_events(evidence(events, commands), relay_killed=True)
    assert not verdict.held and "two contents" in verdict.evidence


def test_a_lost_event_fails_the_commands():
    _, events, commands = history()
    del events[2]
    verdict = commands_have_their_events(evidence(events, commands), relay_killed=True)
    assert not verdict.held and "update u1" in verdict.evidence


def test_events_out_of_version_order_fail_the_commands():
    todo, events, commands = history()
    events[2], events[3] = events[3], events[2]
    verdict = commands_have_their_events(evidence(events, commands), relay_killed=True)
    assert not verdict.held and f"todo {todo}: versions [1, 2, 4, 3]" in verdict.evidence


def test_an_answer_with_another_version_than_its_event_fails():
    todo, events, commands = history()
    commands[1]["version"] = 7
    assert not commands_have_their_events(evidence(events, commands), relay_killed=True).held


def test_a_socket_that_missed_an_event_or_showed_one_twice_fails():
    todo, events, _ = history()
    shown = {ALICE: {"versions": {todo: [1, 2, 3, 4]}, "connects": 1, "closes": {}, "catchups": 0, "incomplete": 0}}
    assert sockets_caught_up(evidence(events, sockets=shown)).held
    shown[ALICE]["versions"][todo] = [1, 2, 4]
    verdict = sockets_caught_up(evidence(events, sockets=shown))
    assert not verdict.held and "missing [3]" in verdict.evidence
    shown[ALICE]["versions"][todo] = [1, 2, 3, 4, 5]
    assert "extra [5]" in sockets_caught_up(evidence(events, sockets=shown)).evidence


def test_a_mail_twice_fails_unless_it_came_just_before_the_notifier_was_killed():
    mails = [("e1", "a@x", 100.0), ("e1", "a@x", 130.0), ("e2", "a@x", 101.0)]
    assert not notifications_once(mails=mails, kills=[], window_s=2.0, unsent={}).held
    assert notifications_once(mails=mails, kills=[101.5], window_s=2.0, unsent={}).held
    assert not notifications_once(mails=mails, kills=[110.0], window_s=2.0, unsent={}).held, "outside the window"
    verdict = notifications_once(mails=mails[2:], kills=[], window_s=2.0, unsent={"pending": 1})
    assert not verdict.held and "pending" in verdict.evidence


def test_a_reminder_fired_twice_or_left_pending_fails():
    due = {"todoId": "t", "reminderType": "PT1H", "dueDate": "2026-01-01T00:00:00Z"}
    assert reminders_once(due_events=[due], fired_rows=1, states={"fired": 1}, pending_due=0).held
    verdict = reminders_once(due_events=[due, due], fired_rows=1, states={"fired": 1}, pending_due=0)
    assert not verdict.held and "'t', 'PT1H'" in verdict.evidence
    assert not reminders_once(due_events=[due], fired_rows=1, states={}, pending_due=1).held


def test_device_records_must_be_one_per_event_and_recipient():
    todo = str(uuid.uuid4())
    events = [event(todo, 1, "c", users=(ALICE, BOB))]
    records = [{"recipient": user, "event": events[0]} for user in (ALICE, BOB)]
    assert device_records_once(evidence(events), records).held
    verdict = device_records_once(evidence(events), records + records[:1])
    assert not verdict.held and "twice" in verdict.evidence
    verdict = device_records_once(evidence(events), records[:1])
    assert not verdict.held and f"('{events[0]['eventId']}', '{BOB}')" in verdict.evidence
