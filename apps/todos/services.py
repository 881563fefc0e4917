"""Todo commands: check the rules against the write-side state, emit events into the outbox.

Each command runs in one transaction: lock the todo's state row (or insert it), decide, bump
the version, append the events to the outbox, whose trigger NOTIFYs the relay at commit
(migration 0003). Nothing is published to Kafka here: that is the relay's job, after commit
(no dual write).
"""
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from apps.todos import audience, events, reminder_events
from apps.todos.models import OutboxEvent, Team, TeamInvitation, TodoState
from polystack.streaming.topics import REMINDER_EVENTS, TODO_EVENTS, resolve

OUTBOX_CHANNEL = "todos_outbox"  # NOTIFYed by the outbox table's trigger (migration 0003)

# When a todo with a due date reminds its people, unless the command names the times.
DEFAULT_REMINDERS_BEFORE: tuple[timedelta, ...] = (timedelta(days=1), timedelta(hours=1))
MAX_REMINDERS = 10  # as the TodoScheduled schema allows
MAX_SNOOZE = timedelta(days=7)  # how far ahead a snooze may put a reminder


class TodoError(Exception):
    """Base of the errors a todo command can end with."""


class TodoNotFoundError(TodoError):
    """No such todo, or not one the user may see."""


class TodoForbiddenError(TodoError):
    """The user may see the todo but not do this to it (e.g. an assignee changing the title)."""


class TodoInvalidError(TodoError):
    """An argument the rules refuse (e.g. assigning a team todo outside the team): 400."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class TodoConflictError(TodoError):
    """The todo's state forbids the command (e.g. it is deleted)."""


class TodoDeletedError(TodoConflictError):
    """The todo is deleted: no command changes it any more."""


class VersionConflictError(TodoConflictError):
    def __init__(self, *, expected: int, current: int):
        super().__init__(f"expected version {expected}, but the todo is at version {current}")
        self.expected = expected
        self.current = current


@dataclass(frozen=True)
class Origin:
    """The device mutation a command comes from (apps.sync): named in its events' metadata, and
    in the field clocks of the fields it changed."""

    device_id: uuid.UUID
    mutation_id: int
    hlc: str  # the device's hybrid logical clock: "<wall ms>:<counter>"


def server_hlc(now: datetime) -> str:
    """The clock of a change made without a device (the REST API): the server's wall time."""
    return f"{int(now.timestamp() * 1000)}:0"


# The fields a device edits, by their name in the todo document, and TodoState's attribute.
CLOCKED_FIELDS = {"title": "title", "description": "description", "priority": "priority", "completed": "completed",
                  "assignedTo": "assigned_to_id", "dueDate": "due_date", "deleted": "deleted"}


def clocked_values(state: TodoState) -> dict:
    return {name: getattr(state, attribute) for name, attribute in CLOCKED_FIELDS.items()}


def _stamp_clocks(state: TodoState, before: dict, *, origin: Origin | None, now: datetime) -> None:
    """Note who changed which fields, at the todo's new version."""
    after = clocked_values(state)
    changed = [name for name, value in after.items() if value != before[name]]
    if changed:
        clock = {"version": state.version, "hlc": origin.hlc if origin else server_hlc(now),
                 "device": str(origin.device_id) if origin else None}
        state.field_clocks = {**state.field_clocks, **dict.fromkeys(changed, clock)}


@dataclass
class CommandResult:
    todo_id: uuid.UUID
    version: int
    events: list[dict] = field(default_factory=list)


def _team_members(team_id) -> set[int]:
    if team_id is None:
        return set()
    return set(Team.members.through.objects.filter(team_id=team_id).values_list("user_id", flat=True))


def _share_a_team(user_id: int, other_id: int) -> bool:
    memberships = Team.members.through.objects
    return memberships.filter(user_id=other_id,
                              team_id__in=memberships.filter(user_id=user_id).values("team_id")).exists()


def _advance(*, state: TodoState, actor_id: int, event_type: str, data: dict, correlation_id: str,
             now: datetime, members: set[int], also_affected: tuple = (), origin: Origin | None = None) -> dict:
    """Move the todo's state to its next version and return the event that records the step.
    Its metadata names everyone who may see the todo (owner, assignee, the team's `members`, and
    `also_affected`, e.g. a former assignee): the realtime and notification consumers route by
    it; those of them who no longer see it after this event (`formerUsers`, e.g. a former
    assignee outside its team), so that their devices drop it (apps.sync); and whether the
    notification rules tell anyone (apps.todos.audience)."""
    state.version += 1
    told = audience.notified({"eventType": event_type, "userId": str(state.owner_id), "data": data},
                             actor_id=actor_id, assignee_id=state.assigned_to_id)
    seeing = {state.owner_id, state.assigned_to_id, *members} - {None}
    former = set(also_affected) - seeing - {None}
    envelope = events.new_envelope(
        event_type=event_type,
        aggregate_id=state.id,
        aggregate_version=state.version,
        user_id=str(state.owner_id),
        data={"todoId": str(state.id), **data},
        correlation_id=correlation_id,
        occurred_at=now,
        metadata={
            "notificationRequired": bool(told),
            "affectedUsers": [str(user_id) for user_id in sorted(seeing | former)],
            **({"formerUsers": [str(user_id) for user_id in sorted(former)]} if former else {}),
            "category": events.CATEGORIES[event_type],
            "actorId": str(actor_id),
            **({"origin": {"deviceId": str(origin.device_id), "mutationId": origin.mutation_id, "hlc": origin.hlc}}
               if origin else {}),
        },
    )
    return envelope


OUTBOX_INSERT = (
    f"INSERT INTO {OutboxEvent._meta.db_table} "
    "(event_id, topic, key, payload, event_type, schema_version, correlation_id, created_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, now())"
)
# Many rows at once (the scheduler appends a thousand in a transaction): one COPY, where
# executemany cost a statement each and an INSERT from arrays spent its time quoting them.
OUTBOX_COPY = (f"COPY {OutboxEvent._meta.db_table} "
               "(event_id, topic, key, payload, event_type, schema_version, correlation_id, created_at) FROM STDIN")


def outbox_append(cursor, envelopes: list[dict], *, topic: str = TODO_EVENTS) -> None:
    """Append events for `topic` (keyed by their userId) to the outbox through `cursor` (Django's,
    or a psycopg one), in its transaction, their ids in the order of `envelopes`. That
    transaction must have written before (locked the todo's state row, or inserted it): that
    gives it its transaction id before the outbox row takes a sequence number, which the relay
    relies on (see `Relay._delete_acked_and_read`)."""
    # SQL rather than OutboxEvent.objects.create(): the ORM's compile took longer than the
    # statement, on the path every command takes (see `make bench`).
    topic = resolve(topic)
    if len(envelopes) == 1:
        e = envelopes[0]
        cursor.execute(OUTBOX_INSERT, (e["eventId"], topic, e["userId"], json.dumps(e), e["eventType"],
                                       e["schemaVersion"], e["correlationId"]))
    elif envelopes:
        now = timezone.now()
        with cursor.copy(OUTBOX_COPY) as copy:
            for e in envelopes:
                copy.write_row((e["eventId"], topic, e["userId"], json.dumps(e), e["eventType"], e["schemaVersion"],
                                e["correlationId"], now))


def _append(envelope: dict) -> dict:
    """Append one event to the outbox of this transaction; returns it."""
    with connection.cursor() as cursor:
        outbox_append(cursor, [envelope])
    return envelope


def load_for_command(
    *, actor: AbstractBaseUser, todo_id: uuid.UUID, expected_version: int | None, assignee_may: bool = False
) -> tuple[TodoState, set[int]]:
    """Lock the todo's state for this transaction and check who may do what to it: its
    owner anything, its assignee what `assignee_may` allows; team members only see it.
    Returns the state and the team's members (read once per command)."""
    # Not .first(): its ORDER BY costs the ORM more than the whole statement costs PostgreSQL.
    state = next(iter(TodoState.objects.select_for_update().filter(id=todo_id)), None)
    members = _team_members(state.team_id) if state is not None else set()
    authorize(actor_id=actor.pk, todo_id=todo_id, state=state, members=members, assignee_may=assignee_may,
              expected_version=expected_version)
    return state, members


def authorize(*, actor_id: int, todo_id: uuid.UUID, state: TodoState | None, members: set[int],
              assignee_may: bool = False, expected_version: int | None = None) -> None:
    """Whether `actor_id` may run a command on the todo in `state` (None: no such todo), or the
    error that says why not. Pure: the caller has read and locked the state."""
    if state is None or not audience.may_see(actor_id, owner_id=state.owner_id, assignee_id=state.assigned_to_id,
                                             team_members=members):
        raise TodoNotFoundError(f"todo {todo_id} not found")
    if state.deleted:
        raise TodoDeletedError("the todo is deleted")
    if state.owner_id != actor_id and not (assignee_may and state.assigned_to_id == actor_id):
        raise TodoForbiddenError("only the todo's owner may do this")
    if expected_version is not None and expected_version != state.version:
        raise VersionConflictError(expected=expected_version, current=state.version)


@transaction.atomic
def todo_create(
    *,
    actor: AbstractBaseUser,
    title: str,
    description: str = "",
    priority: str = events.DEFAULT_PRIORITY,
    due_date: datetime | None = None,
    reminder_times: list[datetime] | None = None,
    team_id: uuid.UUID | None = None,
    todo_id: uuid.UUID | None = None,
    origin: Origin | None = None,
    correlation_id: str,
) -> CommandResult:
    """A new todo; `todo_id` when its creator chose the id (a device creating it offline)."""
    members = _team_members(team_id)
    if team_id is not None and actor.pk not in members:
        raise TodoInvalidError("teamId", "not a team you are a member of")
    now = timezone.now()
    state = TodoState(owner_id=actor.pk, version=0, title=title, description=description, created_at=now,
                      team_id=team_id, priority=priority, **({"id": todo_id} if todo_id else {}))
    envelope = _advance(
        state=state,
        origin=origin,
        actor_id=actor.pk,
        members=members,
        event_type=events.TODO_CREATED,
        data={
            "title": title,
            "description": description,
            "userId": str(actor.pk),
            "createdAt": events.iso(now),
            "priority": priority,
            "dueDate": events.iso(due_date) if due_date else None,
            "teamId": str(team_id) if team_id else None,
        },
        correlation_id=correlation_id,
        now=now,
    )
    emitted = [envelope]
    if due_date is not None or reminder_times:  # the reminders of a due date set at creation
        emitted.append(_advance(state=state, actor_id=actor.pk, members=members, event_type=events.TODO_SCHEDULED,
                                data=schedule_data(due_date, reminder_times, now), correlation_id=correlation_id,
                                now=now, origin=origin))
        state.due_date, state.schedule_version = due_date, state.version
    state.save(force_insert=True)  # the transaction's first write comes before its outbox rows
    for event in emitted:
        _append(event)
    return CommandResult(state.id, state.version, emitted)


def _command(*, actor, todo_id, expected_version, correlation_id, decide, assignee_may=False,
             origin: Origin | None = None) -> CommandResult:
    """Run `decide(state, now, members) -> [(event_type, data), ...]` under the todo's lock;
    emit the events. Whoever was affected before the command stays affected by its events (a former
    assignee sees the todo go)."""
    with transaction.atomic():
        state, members = load_for_command(
            actor=actor, todo_id=todo_id, expected_version=expected_version, assignee_may=assignee_may
        )
        before = (state.assigned_to_id,)
        values = clocked_values(state)
        now = timezone.now()
        emitted = [
            _append(_advance(state=state, actor_id=actor.pk, event_type=event_type, data=data, origin=origin,
                                correlation_id=correlation_id, now=now, members=members, also_affected=before))
            for event_type, data in decide(state, now, members)
        ]
        _stamp_clocks(state, values, origin=origin, now=now)
        state.save()
        return CommandResult(state.id, state.version, emitted)


def todo_update(
    *,
    actor: AbstractBaseUser,
    todo_id: uuid.UUID,
    title: str | None = None,
    description: str | None = None,
    expected_version: int | None = None,
    origin: Origin | None = None,
    correlation_id: str,
) -> CommandResult:
    """Change title and/or description; the event carries both new values."""

    def decide(state, now, members):
        state.title = state.title if title is None else title
        state.description = state.description if description is None else description
        data = {"title": state.title, "description": state.description, "updatedAt": events.iso(now)}
        return [(events.TODO_UPDATED, data)]

    return _command(actor=actor, todo_id=todo_id, expected_version=expected_version,
                    correlation_id=correlation_id, decide=decide, origin=origin)


def todo_complete(
    *, actor: AbstractBaseUser, todo_id: uuid.UUID, expected_version: int | None = None, origin: Origin | None = None,
    correlation_id: str,
) -> CommandResult:
    def decide(state, now, members):
        if state.completed:
            raise TodoConflictError("the todo is already completed")
        state.completed = True
        return [(events.TODO_COMPLETED, {"completedAt": events.iso(now)})]

    return _command(actor=actor, todo_id=todo_id, expected_version=expected_version,
                    correlation_id=correlation_id, decide=decide, origin=origin, assignee_may=True)


def todo_delete(
    *, actor: AbstractBaseUser, todo_id: uuid.UUID, expected_version: int | None = None, origin: Origin | None = None,
    correlation_id: str,
) -> CommandResult:
    def decide(state, now, members):
        state.deleted = True
        return [(events.TODO_DELETED, {"deletedAt": events.iso(now)})]

    return _command(actor=actor, todo_id=todo_id, expected_version=expected_version,
                    correlation_id=correlation_id, decide=decide, origin=origin)


def todo_assign(
    *,
    actor: AbstractBaseUser,
    todo_id: uuid.UUID,
    assignee: AbstractBaseUser,
    expected_version: int | None = None,
    origin: Origin | None = None,
    correlation_id: str,
) -> CommandResult:
    def decide(state, now, members):
        if state.team_id is not None and assignee.pk != state.owner_id and assignee.pk not in members:
            raise TodoInvalidError("assignedTo", "not a member of the todo's team")
        if state.team_id is None and assignee.pk != state.owner_id and not _share_a_team(state.owner_id, assignee.pk):
            raise TodoInvalidError("assignedTo", "not someone you share a team with")
        state.assigned_to_id = assignee.pk
        return [(events.TODO_ASSIGNED, {"assignedTo": str(assignee.pk), "assignedAt": events.iso(now)})]

    return _command(actor=actor, todo_id=todo_id, expected_version=expected_version,
                    correlation_id=correlation_id, decide=decide, origin=origin)


def todo_prioritize(
    *,
    actor: AbstractBaseUser,
    todo_id: uuid.UUID,
    priority: str,
    expected_version: int | None = None,
    origin: Origin | None = None,
    correlation_id: str,
) -> CommandResult:
    def decide(state, now, members):
        state.priority = priority
        return [(events.TODO_PRIORITIZED, {"priority": priority, "prioritizedAt": events.iso(now)})]

    return _command(actor=actor, todo_id=todo_id, expected_version=expected_version,
                    correlation_id=correlation_id, decide=decide, origin=origin)


def todo_conflict_detected(*, actor: AbstractBaseUser, todo_id: uuid.UUID, conflict: dict, origin: Origin,
                           correlation_id: str) -> CommandResult:
    """Record on the todo that a device's change of a field met a concurrent one and was not
    applied (its user's policy is manual): TodoConflictDetected, with both values (`conflict`:
    the event's data but todoId and detectedAt). The todo's fields do not change."""

    def decide(state, now, members):
        return [(events.TODO_CONFLICT_DETECTED, {**conflict, "detectedAt": events.iso(now)})]

    return _command(actor=actor, todo_id=todo_id, expected_version=None, correlation_id=correlation_id,
                    decide=decide, origin=origin, assignee_may=True)


def todo_conflict_resolved(*, actor: AbstractBaseUser, todo_id: uuid.UUID, conflict_id: uuid.UUID, field: str,
                           value, correlation_id: str) -> CommandResult:
    """A user chose `value` for a conflicting field: TodoConflictResolved. The value itself is
    set by the field's own command, which the caller runs next in the same transaction."""

    def decide(state, now, members):
        return [(events.TODO_CONFLICT_RESOLVED, {"conflictId": str(conflict_id), "field": field, "value": value,
                                                 "resolvedAt": events.iso(now)})]

    return _command(actor=actor, todo_id=todo_id, expected_version=None, correlation_id=correlation_id,
                    decide=decide, assignee_may=True)


def schedule_data(due_date: datetime | None, reminder_times: list[datetime] | None, now: datetime) -> dict:
    """TodoScheduled's data (without todoId): the due date and when to remind. Without
    `reminder_times`, DEFAULT_REMINDERS_BEFORE the due date, those already past left out;
    given ones must lie ahead and not after the due date. No due date, no reminders."""
    if due_date is None:
        if reminder_times:
            raise TodoInvalidError("reminderTimes", "a todo without a due date has no reminders")
        times = []
    elif reminder_times is None:
        times = [due_date - before for before in DEFAULT_REMINDERS_BEFORE if due_date - before > now]
    else:
        if len(reminder_times) > MAX_REMINDERS:
            raise TodoInvalidError("reminderTimes", f"at most {MAX_REMINDERS} reminders")
        if any(moment <= now for moment in reminder_times):
            raise TodoInvalidError("reminderTimes", "a reminder time that has passed")
        if any(moment > due_date for moment in reminder_times):
            raise TodoInvalidError("reminderTimes", "a reminder time after the due date")
        times = reminder_times
    return {
        "dueDate": events.iso(due_date) if due_date else None,
        "reminderTimes": [events.iso(moment) for moment in sorted(set(times))],
        "scheduledAt": events.iso(now),
    }


def todo_schedule(
    *,
    actor: AbstractBaseUser,
    todo_id: uuid.UUID,
    due_date: datetime | None,
    reminder_times: list[datetime] | None = None,
    expected_version: int | None = None,
    correlation_id: str,
) -> CommandResult:
    """Set (or, with no due date, clear) the todo's due date and reminders: the whole schedule,
    which replaces the one before."""

    def decide(state, now, members):
        if state.completed:
            raise TodoConflictError("the todo is completed: it has nothing left to be reminded of")
        data = schedule_data(due_date, reminder_times, now)
        state.due_date, state.schedule_version = due_date, state.version + 1  # the version of this one event
        return [(events.TODO_SCHEDULED, data)]

    return _command(actor=actor, todo_id=todo_id, expected_version=expected_version,
                    correlation_id=correlation_id, decide=decide)


@dataclass
class SnoozeResult:
    todo_id: uuid.UUID
    snooze_until: datetime
    event: dict


def todo_snooze(*, actor: AbstractBaseUser, todo_id: uuid.UUID, until: datetime, correlation_id: str) -> SnoozeResult:
    """Remind the owner again at `until`: ReminderSnoozed on reminder-events, which the due table
    (apps.reminders) arms as a reminder of its own. The todo does not change (no new version),
    but its lock is taken: a snooze and a reschedule are decided one after the other, and the
    snooze names the schedule it belongs to (a later schedule replaces it)."""
    with transaction.atomic():
        state, _ = load_for_command(actor=actor, todo_id=todo_id, expected_version=None)
        now = timezone.now()
        if state.completed:
            raise TodoConflictError("the todo is completed: it has nothing left to be reminded of")
        if state.due_date is None:
            raise TodoConflictError("the todo has no due date: schedule it first")
        if until <= now:
            raise TodoInvalidError("until", "a moment that has passed")
        if until > now + MAX_SNOOZE:
            raise TodoInvalidError("until", f"at most {MAX_SNOOZE.days} days ahead")
        event = reminder_events.new_envelope(
            event_type=reminder_events.REMINDER_SNOOZED, todo_id=state.id, user_id=state.owner_id,
            data={"dueDate": events.iso(state.due_date), "snoozeUntil": events.iso(until),
                  "scheduledVersion": state.schedule_version, "snoozedAt": events.iso(now)},
            correlation_id=correlation_id, occurred_at=now)
        with connection.cursor() as cursor:  # after the row lock: the outbox's order rule holds
            outbox_append(cursor, [event], topic=REMINDER_EVENTS)
        return SnoozeResult(state.id, until, event)


# --- teams ---------------------------------------------------------------------------------
# Membership decides who sees a team's todos, so it changes only with consent: the owner
# invites, the invitee accepts or declines, a member leaves or the owner removes them. A member
# who goes stops being the assignee of the team's todos, by events (everyone sees it happen).


class TeamError(Exception):
    """Base of the errors a team command can end with."""


class TeamFullError(TeamError):
    pass


class TeamOwnerLeavesError(TeamError):
    pass


def team_invite(*, team: Team, invitee_id: int | None, actor: AbstractBaseUser) -> None:
    """Invite a user (nothing happens for an id that is nobody, an inactive user, a member, or
    one already invited: the answer is the same, so inviting tells nothing of who exists)."""
    invitee = get_user_model().objects.filter(pk=invitee_id, is_active=True).first() if invitee_id else None
    if invitee is None or team.members.filter(pk=invitee.pk).exists():
        return
    TeamInvitation.objects.get_or_create(team=team, invitee=invitee, defaults={"invited_by": actor})


@transaction.atomic
def team_accept(*, invitation: TeamInvitation) -> Team:
    team = Team.objects.select_for_update().get(pk=invitation.team_id)  # one join at a time: the cap holds
    if team.members.count() >= Team.MAX_MEMBERS:
        raise TeamFullError(f"the team is full ({Team.MAX_MEMBERS} members)")
    team.members.add(invitation.invitee_id)
    invitation.delete()
    return team


@transaction.atomic
def team_remove_member(*, team: Team, user_id: int, actor: AbstractBaseUser, correlation_id: str) -> None:
    """A member leaves (actor == the member) or is removed by the owner: their membership goes,
    and each team todo assigned to them is unassigned by a TodoAssigned event (assignedTo null),
    so that they no longer see it, are no longer notified of it, and cannot complete it."""
    if user_id == team.owner_id:
        raise TeamOwnerLeavesError("the owner cannot leave their team")
    team.members.remove(user_id)
    now = timezone.now()
    members = _team_members(team.id)
    for state in TodoState.objects.select_for_update().filter(team=team, assigned_to_id=user_id, deleted=False):
        before = (state.assigned_to_id,)
        state.assigned_to_id = None
        _append(_advance(state=state, actor_id=actor.pk, event_type=events.TODO_ASSIGNED,
                            data={"assignedTo": None, "assignedAt": events.iso(now)}, correlation_id=correlation_id,
                            now=now, members=members, also_affected=before))
        state.save()
