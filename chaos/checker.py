"""The chaos run's checker: once the faults are over and the system has settled, what every phase
promises, checked against what really happened — the clients' records of each answer, the
topics read to their end, the tables, the mails the SMTP server got. Each invariant says whether
it held and gives its evidence (the first few violations, by id), as Kafka's transactions_test
and Jepsen's checkers do: a count of what was checked, and the counter-examples."""
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from polystack.streaming import kafka, topics
from polystack.streaming.topics import resolve

ACKNOWLEDGED = {200, 201, 202, 204}
SHOWN = 5  # counter-examples shown per invariant


@dataclass
class Invariant:
    name: str
    held: bool
    evidence: str


def examples(items) -> str:
    items = list(items)
    more = f" (and {len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return "; ".join(str(i) for i in items[:SHOWN]) + more


def read_all(topic: str) -> list:
    """Every record of `topic` now, each partition in order: (partition, offset, value). Read
    committed (librdkafka's default): an aborted transaction's records are not there."""
    return [(m.partition(), m.offset(), m.value()) for m in kafka.read_to_end(resolve(topic), group_id="chaos-checker")]


@dataclass
class Evidence:
    """What the checker reads once, shared by the invariants."""

    commands: list[dict]
    records: list[dict]  # todo-events, each partition in offset order (a todo's events are in one)
    sockets: dict[str, dict]  # user id -> the socket's view (chaos.load.Watcher.view)

    @property
    def events(self) -> list[dict]:
        """The records, each event once: a relay killed between the broker's ack and its DELETE
        publishes its last rows again (at least once; every consumer dedupes by version)."""
        seen, events = set(), []
        for envelope in self.records:
            if envelope["eventId"] not in seen:
                seen.add(envelope["eventId"])
                events.append(envelope)
        return events

    @classmethod
    def gather(cls, folder: Path) -> "Evidence":
        commands = [json.loads(line) for path in sorted(folder.glob("commands-*.jsonl"))
                    for line in path.read_text().splitlines() if line]
        sockets = {}
        for path in sorted(folder.glob("sockets-*.json")):
            sockets.update(json.loads(path.read_text()))
        envelopes = [json.loads(value) for _, _, value in read_all(topics.TODO_EVENTS)]
        return cls(commands=commands, records=envelopes, sockets=sockets)

    def audience(self) -> dict[str, dict[str, list[int]]]:
        """user id -> todo -> the versions the user's socket must show (the event's affectedUsers)."""
        expected: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for envelope in self.events:
            for user in envelope["metadata"]["affectedUsers"]:
                expected[user][envelope["aggregateId"]].append(envelope["aggregateVersion"])
        return expected


def unsent_notifications() -> dict[str, int]:
    from apps.notifications.models import Notification

    return dict(Counter(Notification.objects.exclude(status=Notification.Status.SENT).values_list("status", flat=True)))


def reminder_facts(*, horizon: datetime) -> dict:
    """What reminders_once judges: the ReminderDue events on reminder-events, and the due table.
    `horizon`: every reminder the run's commands set comes before it (the others are the
    schedules' later ones, an hour ahead)."""
    from apps.reminders.models import Reminder

    envelopes = (json.loads(value) for _, _, value in read_all(topics.REMINDER_EVENTS))
    return {
        "due_events": [e["data"] for e in envelopes if e["eventType"] == "ReminderDue"],
        "fired_rows": Reminder.objects.filter(state=Reminder.FIRED).count(),
        "states": dict(Counter(Reminder.objects.values_list("state", flat=True))),
        "pending_due": Reminder.objects.filter(state=Reminder.PENDING, remind_at__lt=horizon).count(),
    }


def device_records() -> list[dict]:
    return [json.loads(value) for _, _, value in read_all(topics.DEVICE_SYNC_EVENTS)]


def commands_have_their_events(evidence: Evidence, *, relay_killed: bool) -> Invariant:
    """Every acknowledged command has its events on todo-events exactly once (one; two for a
    create with a schedule), of its todo, ending at the version its answer gave; every todo's
    events are versions 1, 2, 3... in the log's order: no duplicate, no gap, none reordered.
    A record repeated whole (same eventId, same content) is the relay's documented at-least-once
    window, excused only in a run that killed the relay; one eventId with two contents never is."""
    by_cid = defaultdict(list)
    by_todo = defaultdict(list)
    first: dict[str, dict] = {}
    republished, forged = 0, []
    for envelope in evidence.records:
        earlier = first.setdefault(envelope["eventId"], envelope)
        if earlier is not envelope:
            republished += 1
            if earlier != envelope:
                forged.append(f"event {envelope['eventId']}: two contents")
    for envelope in evidence.events:
        by_cid[envelope["correlationId"]].append(envelope)
        by_todo[envelope["aggregateId"]].append(envelope["aggregateVersion"])
    acknowledged = [c for c in evidence.commands if c["status"] in ACKNOWLEDGED]
    wrong = []
    for command in acknowledged:
        made = by_cid.get(command["cid"], [])
        versions = [e["aggregateVersion"] for e in made]
        if (len(made) != command["events"] or {e["aggregateId"] for e in made} != {command["todo"]}
                or (command["version"] is not None and max(versions) != command["version"])):
            wrong.append(f"{command['action']} {command['cid']} answered {command['status']} v{command['version']}: "
                         f"events {sorted(versions)}")
    disordered = [f"todo {todo}: versions {versions[:12]}" for todo, versions in by_todo.items()
                  if versions != list(range(1, len(versions) + 1))]
    if republished and not relay_killed:
        forged.append(f"{republished} records repeated with no relay killed")
    unanswered = [c for c in evidence.commands if c["status"] == 0]
    applied = sum(1 for c in unanswered if c["cid"] in by_cid)
    evidence_line = (f"{len(acknowledged):,} acknowledged, {len(evidence.events):,} events of {len(by_todo):,} todos; "
                     f"{len(unanswered)} unanswered ({applied} of them applied); {republished} records republished "
                     "after a relay kill")
    violations = wrong + disordered + forged
    if violations:
        evidence_line += f"; VIOLATIONS: {examples(violations)}"
    return Invariant("every acknowledged command: its events once, in version order", not violations, evidence_line)


def no_server_errors(evidence: Evidence) -> Invariant:
    statuses = Counter(c["status"] for c in evidence.commands)
    errors = {s: n for s, n in statuses.items() if s >= 500 and s != 503}
    shown = ", ".join(f"{s}: {n:,}" for s, n in sorted(statuses.items()))
    return Invariant("no request answered 500 (503 with Retry-After is the outage answer)", not errors,
                     f"answers {shown}" + (" (0: no answer, the web role was down)" if statuses.get(0) else ""))


def projection_equals_replay(*, before: str, after: str, applied: int, records: int) -> Invariant:
    """The live tables' checksum equals a rebuild's from every record of todo-events (a
    republished record among them: the fold takes it as the no-op it is)."""
    held = before == after and applied == records
    return Invariant("the projection equals a fresh replay", held,
                     f"checksum {before[:8]}… before, {after[:8]}… after replaying {applied:,} of {records:,} records")


def sockets_caught_up(evidence: Evidence) -> Invariant:
    """Every socket showed every event of every todo its user may see, each once: no gap."""
    wrong, shown = [], 0
    for user, todos in evidence.audience().items():
        view = evidence.sockets.get(user)
        if view is None:
            continue  # a user with no socket in this run (none: every user has one)
        for todo, versions in todos.items():
            seen = view["versions"].get(todo, [])
            shown += len(seen)
            if seen != sorted(versions):
                missing = sorted(set(versions) - set(seen))
                extra = sorted(set(seen) - set(versions))
                wrong.append(f"user {user} todo {todo}: missing {missing[:6]} extra {extra[:6]}")
    sockets = evidence.sockets.values()
    closes = Counter()
    for view in sockets:
        closes.update(view["closes"])
    line = (f"{len(evidence.sockets)} sockets showed {shown:,} events; {sum(v['connects'] for v in sockets)} connects, "
            f"closes {dict(closes)}, {sum(v['catchups'] for v in sockets)} gap catch-ups, "
            f"{sum(v['incomplete'] for v in sockets)} reloads")
    if wrong:
        line += f"; VIOLATIONS: {examples(wrong)}"
    return Invariant("every socket caught up, no gap", not wrong, line)


def notifications_once(*, mails: list[tuple[str, str, float]], kills: list[float], window_s: float,
                       unsent: dict[str, int]) -> Invariant:
    """No mail twice for one (event, recipient) — except one whose first copy came just before
    the notification role was SIGKILLed (the SMTP-ack window: sent, not yet marked sent) — and
    no notification row left unsent (`unsent`: rows by status other than sent)."""
    received = defaultdict(list)
    for event, recipient, at in mails:
        received[(event, recipient)].append(at)
    twice = {key: times for key, times in received.items() if len(times) > 1}
    excused = {key for key, times in twice.items() if any(k - window_s <= min(times) <= k for k in kills)}
    unexcused = [f"event {e} to {r}: {len(received[(e, r)])} mails" for e, r in twice if (e, r) not in excused]
    line = (f"{len(mails):,} mails for {len(received):,} (event, recipient); {len(twice)} twice, {len(excused)} of "
            f"them in the SMTP-ack window of a kill; rows not sent: {unsent or 0}")
    if unexcused:
        line += f"; VIOLATIONS: {examples(unexcused)}"
    return Invariant("no notification sent twice, none left unsent", not unexcused and not unsent, line)


def reminders_once(*, due_events: list[dict], fired_rows: int, states: dict[str, int], pending_due: int) -> Invariant:
    """Each reminder fired once: one ReminderDue (`due_events`: their data) per (todo, type, due
    date), as many as rows marked fired, and none due before the end left pending."""
    fired = Counter((data["todoId"], data["reminderType"], data["dueDate"]) for data in due_events)
    twice = [f"{key}: {n}" for key, n in fired.items() if n > 1]
    held = not twice and fired_rows == len(fired) and pending_due == 0
    line = (f"{sum(fired.values()):,} ReminderDue for {fired_rows:,} fired rows (rows by state {states}); "
            f"{pending_due} due and still pending")
    if twice:
        line += f"; VIOLATIONS: {examples(twice)}"
    return Invariant("each reminder fired once, none left behind", held, line)


def device_records_once(evidence: Evidence, records: list[dict]) -> Invariant:
    """device-sync-events (`records`, read committed): one per (event, recipient it affects)."""
    expected = Counter((e["eventId"], user) for e in evidence.events for user in e["metadata"]["affectedUsers"])
    got = Counter((record["event"]["eventId"], record["recipient"]) for record in records)
    twice = [f"{key}: {n}" for key, n in got.items() if n > 1]
    missing = [str(key) for key in expected if key not in got]
    extra = [str(key) for key in got if key not in expected]
    line = f"{sum(got.values()):,} committed records for {len(expected):,} (event, recipient)"
    if twice or missing or extra:
        line += f"; VIOLATIONS: twice {examples(twice)}; missing {examples(missing)}; unexpected {examples(extra)}"
    return Invariant("device-sync-events exactly once per (event, recipient)", not (twice or missing or extra), line)


def analytics_agree() -> Invariant:
    from apps.analytics.verify import verify

    report = verify()
    differences = report.differences
    line = (f"{report.events:,} events recomputed in batch: {len(report.expected):,} window values, "
            f"{len(differences)} differences, {report.late_drops} late drops")
    if differences:
        line += f"; VIOLATIONS: {examples(differences)}"
    return Invariant("`analytics verify` agrees with the stream", not differences, line)

