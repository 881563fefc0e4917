"""Device mutations, each applied exactly once, in order, with concurrent edits merged.

A device numbers its mutations 1, 2, 3, ... (Replicache's rule). The server keeps the last it
applied (`Device.last_mutation_id`) and changes it in the same database transaction as the
mutation's commands and their events (the outbox): a mutation whose id is not above it was
applied already and is acknowledged as a duplicate, doing nothing; one beyond the next is
refused (MutationGapError) so that the device resends in order. A mutation the rules refuse
(not found, not allowed, invalid, a clock too far ahead) is answered "rejected" and still
counts as done: resending it could never succeed, and the device must get past it.

An edit runs under the todo's row lock: its changes are compared with the todo's field clocks
(apps.sync.conflicts) and only what survives is applied, through the todo commands
(apps.todos.services), with the device as the events' origin. Under the manual policy a
conflicting field is recorded (Conflict) and announced on the todo (TodoConflictDetected).
"""
import json
import logging
import uuid

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.sync.api.serializers import COMPLETE, CREATE, DELETE, MutationSerializer
from apps.sync.conflicts import LWW, ClockError, Hlc, check_skew, decide
from apps.sync.models import Conflict, Device, SyncRecord, SyncSettings
from apps.todos import services as todos
from apps.todos.models import TodoState

logger = logging.getLogger("apps.sync")

APPLIED, DUPLICATE, REJECTED = "applied", "duplicate", "rejected"


class MutationError(Exception):
    """Base of the errors that stop a push."""


class MutationGapError(MutationError):
    def __init__(self, last_mutation_id: int):
        super().__init__(f"mutations must follow {last_mutation_id}: resend from {last_mutation_id + 1}")
        self.last_mutation_id = last_mutation_id


class DeviceGoneError(MutationError):
    """The device was removed (or is not the user's)."""


def conflict_policy(*, user_id: int) -> str:
    return SyncSettings.objects.filter(user_id=user_id).values_list("conflict_policy", flat=True).first() or LWW


def mutation_receive(*, user: AbstractBaseUser, device_id: uuid.UUID, number: int, raw: dict) -> dict:
    """A mutation as a socket frame carried it: validated (which reads the database: an assignee
    must exist), then applied once, or counted as rejected when invalid."""
    checked = MutationSerializer(data=raw)
    if checked.is_valid():
        return mutation_apply(user=user, device_id=device_id, number=number, mutation=checked.validated_data)
    return mutation_apply(user=user, device_id=device_id, number=number, mutation=None, invalid=checked.errors)


def mutation_apply(*, user: AbstractBaseUser, device_id: uuid.UUID, number: int, mutation: dict | None,
                   invalid: dict | None = None) -> dict:
    """Apply mutation `number` of the user's device, exactly once: `mutation` as validated by
    apps.sync.api.serializers.MutationSerializer, or None and the errors that made it `invalid`
    (it is counted, and rejected: resent, it would be just as invalid). Its result as the device
    receives it."""
    with transaction.atomic():
        device = Device.objects.select_for_update().filter(id=device_id, user=user).first()
        if device is None:
            raise DeviceGoneError(f"no device {device_id}")
        if number <= device.last_mutation_id:
            return {"id": number, "status": DUPLICATE}
        if number != device.last_mutation_id + 1:
            raise MutationGapError(device.last_mutation_id)
        if mutation is None:
            result = {"status": REJECTED, "error": "invalid mutation", "errors": invalid}
        else:
            origin = todos.Origin(device_id=device.id, mutation_id=number, hlc=mutation["hlc"])
            try:
                with transaction.atomic():  # a refused mutation undoes its own writes, not the count
                    result = {"todoId": str(mutation["todoId"]),
                              **_apply(user=user, device=device, mutation=mutation, origin=origin)}
            except (todos.TodoError, ClockError) as exc:
                result = {"todoId": str(mutation["todoId"]), "status": REJECTED, "error": str(exc)}
        device.last_mutation_id = number
        device.save(update_fields=["last_mutation_id"])
    return {"id": number, **result}


def _apply(*, user: AbstractBaseUser, device: Device, mutation: dict, origin: todos.Origin) -> dict:
    hlc = Hlc.parse(mutation["hlc"])
    check_skew(hlc, now_ms=int(timezone.now().timestamp() * 1000))
    name, todo_id, args = mutation["name"], mutation["todoId"], mutation["args"]
    correlation_id = f"m:{device.id}:{origin.mutation_id}"
    if name == CREATE:
        try:
            created = todos.todo_create(actor=user, todo_id=todo_id, title=args["title"],
                                        description=args["description"], priority=args["priority"],
                                        team_id=args["teamId"], origin=origin, correlation_id=correlation_id)
        except IntegrityError:  # the id is taken (todo_create's own savepoint undid the attempt)
            raise todos.TodoConflictError("a todo with this id exists") from None
        return {"status": APPLIED, "version": created.version, "applied": sorted(args), "lost": {}, "conflicts": []}
    try:
        state, _ = todos.load_for_command(actor=user, todo_id=todo_id, expected_version=None,
                                          assignee_may=name == COMPLETE)
    except todos.TodoDeletedError:
        # Deleted stays deleted, under every policy: an edit of it is reported lost.
        version = TodoState.objects.filter(id=todo_id).values_list("version", flat=True).first()
        lost = {} if name == DELETE else {"deleted": True}
        return {"status": APPLIED, "version": version, "applied": [], "lost": lost, "conflicts": []}
    changes = {"completed": True} if name == COMPLETE else {"deleted": True} if name == DELETE else args
    outcome = decide(changes=changes, current=_current(state), clocks=state.field_clocks,
                     base_version=mutation["baseVersion"], device_id=str(device.id), hlc=hlc,
                     policy=conflict_policy(user_id=state.owner_id))
    version = _run(user=user, todo_id=todo_id, values=outcome.apply, origin=origin,
                   correlation_id=correlation_id) or state.version
    recorded = []
    for field, kept in outcome.conflicts.items():
        frame, version = _record_conflict(user=user, device=device, state=state, field=field, local=changes[field],
                                          kept=kept, base_version=mutation["baseVersion"], origin=origin,
                                          correlation_id=correlation_id)
        recorded.append(frame)
    return {"status": APPLIED, "version": version, "applied": sorted(outcome.apply), "lost": outcome.lost,
            "conflicts": recorded}


def _current(state: TodoState) -> dict:
    """The todo's values as devices hold them (ids as strings)."""
    values = todos.clocked_values(state)
    values["assignedTo"] = None if state.assigned_to_id is None else str(state.assigned_to_id)
    return values


def _run(*, user, todo_id, values: dict, origin, correlation_id: str) -> int | None:
    """Set `values` through the todo commands; the todo's version after them (None: nothing set)."""
    done = None
    common = {"actor": user, "todo_id": todo_id, "origin": origin, "correlation_id": correlation_id}
    if "title" in values or "description" in values:
        done = todos.todo_update(title=values.get("title"), description=values.get("description"), **common)
    if "priority" in values:
        done = todos.todo_prioritize(priority=values["priority"], **common)
    if "assignedTo" in values:
        assignee = get_user_model().objects.filter(pk=int(values["assignedTo"]), is_active=True).first()
        if assignee is None:
            raise todos.TodoInvalidError("assignedTo", "no such user")
        done = todos.todo_assign(assignee=assignee, **common)
    if values.get("completed"):
        done = todos.todo_complete(**common)
    if values.get("deleted"):
        done = todos.todo_delete(**common)
    return done.version if done else None


def _value_at(*, user_id: int, todo_id: uuid.UUID, version: int, field: str):
    """The field's value in the todo's version `version` as the user's stream carried it (None:
    not held any more, or version 0)."""
    text = SyncRecord.objects.filter(user_id=user_id, todo_id=todo_id, version=version).values_list(
        "record", flat=True).first()
    todo = json.loads(text)["todo"] if text else None
    return todo.get(field) if todo else None


def _record_conflict(*, user, device: Device, state: TodoState, field: str, local, kept, base_version: int,
                     origin, correlation_id: str) -> tuple[dict, int]:
    """Record a conflict and announce it on the todo; its frame for the device, and the todo's
    version after. A device that changes a field again while its conflict on it is open (many
    edits made offline) updates that conflict: one question per field and device, with its
    latest value."""
    remote_device = state.field_clocks[field]["device"]
    conflict = Conflict.objects.filter(todo_id=state.id, field=field, local_device=device,
                                       resolved_at__isnull=True).first()
    if conflict is None:
        conflict = Conflict(todo_id=state.id, field=field, local_device=device, detected_by=user)
    conflict.base_version, conflict.local_value, conflict.remote_value = base_version, local, kept
    conflict.base_value = _value_at(user_id=user.pk, todo_id=state.id, version=base_version, field=field)
    conflict.remote_device_id = remote_device
    conflict.save()
    announced = todos.todo_conflict_detected(
        actor=user, todo_id=state.id, origin=origin, correlation_id=correlation_id,
        conflict={"conflictId": str(conflict.id), "field": field, "baseVersion": base_version,
                  "baseValue": conflict.base_value, "localValue": local, "remoteValue": kept,
                  "localDeviceId": str(device.id), "remoteDeviceId": remote_device})
    logger.info("conflict %s on %s of todo %s: device %s's %r kept out by %r", conflict.id, field, state.id,
                device.id, local, kept)
    return {"conflictId": str(conflict.id), "field": field, "localValue": local, "remoteValue": kept}, announced.version


def conflict_resolve(*, user: AbstractBaseUser, conflict: Conflict, value, correlation_id: str) -> Conflict:
    """The todo's owner chose `value` (checked by apps.sync.api.serializers.value_of_field) for
    a conflicting field: TodoConflictResolved, then the field's own command when the todo does
    not hold that value already. Once per conflict."""
    with transaction.atomic():
        conflict = Conflict.objects.select_for_update().get(id=conflict.id)
        if conflict.resolved_at is not None:
            raise todos.TodoConflictError("the conflict was resolved already")
        state, _ = todos.load_for_command(actor=user, todo_id=conflict.todo_id, expected_version=None)
        current = _current(state)[conflict.field]
        if conflict.field == "completed" and current and not value:
            raise todos.TodoInvalidError("value", "a completed todo cannot be made not completed")
        todos.todo_conflict_resolved(actor=user, todo_id=conflict.todo_id, conflict_id=conflict.id,
                                     field=conflict.field, value=value, correlation_id=correlation_id)
        if value != current:
            _run(user=user, todo_id=conflict.todo_id, values={conflict.field: value}, origin=None,
                 correlation_id=correlation_id)
        conflict.resolved_at, conflict.resolved_by, conflict.resolution = timezone.now(), user, value
        conflict.save(update_fields=["resolved_at", "resolved_by", "resolution"])
    return conflict


def policy_set(*, user: AbstractBaseUser, policy: str) -> str:
    SyncSettings.objects.update_or_create(user=user, defaults={"conflict_policy": policy})
    return policy
