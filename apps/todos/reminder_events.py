"""The reminder events on `reminder-events`: ReminderDue (the scheduler fired a reminder),
ReminderSent (delivered on one channel), ReminderSnoozed (remind me again at ...).

Read through one door, as todo events are (apps.todos.events): `read()` checks the envelope
(schemas/reminders/envelope.json) and the data against schemas/reminders/<eventType>.v<N>.json, with
the same checker and the same errors. Anyone who can write to the topic can send anything, so
every consumer of the topic reads with it. Keyed by the owner's userId, like todo events.
Here, beside the todo events, because the scheduler (apps.reminders) writes them and the
notifications read them: features do not import each other.
"""
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from apps.todos import events
from apps.todos.events import InvalidEventError

SCHEMAS = Path(__file__).resolve().parent / "schemas" / "reminders"

REMINDER_DUE = "ReminderDue"
REMINDER_SENT = "ReminderSent"
REMINDER_SNOOZED = "ReminderSnoozed"

CURRENT_VERSIONS: dict[str, int] = {REMINDER_DUE: 1, REMINDER_SENT: 1, REMINDER_SNOOZED: 1}
# (eventType, version) -> function lifting `data` to the next version; none yet.
UPCASTERS: dict[tuple[str, int], Callable[[dict], dict]] = {}


def validate(envelope: dict) -> None:
    events.check("envelope", envelope, schemas=SCHEMAS)
    events.check_known(envelope, CURRENT_VERSIONS)
    events.check(f"{envelope['eventType']}.v{envelope['schemaVersion']}", envelope["data"], schemas=SCHEMAS)
    events.check_moments(envelope)


def read(payload: Any) -> dict:
    """Every consumer's way in: validate at the written version, then upcast."""
    if not isinstance(payload, dict):
        raise InvalidEventError("an event must be a JSON object")
    validate(payload)
    event_type, version, data = payload["eventType"], payload["schemaVersion"], payload["data"]
    if version == CURRENT_VERSIONS[event_type]:
        return payload
    while version < CURRENT_VERSIONS[event_type]:
        data = UPCASTERS[(event_type, version)](data)
        version += 1
    return {**payload, "schemaVersion": version, "data": data}


def new_envelope(*, event_type: str, todo_id: uuid.UUID | str, user_id: int | str, data: dict,
                 correlation_id: str, occurred_at: datetime | str, causation_id: str | None = None) -> dict:
    """A current-version envelope, validated: an invalid event never reaches the outbox.
    `occurred_at` may come formatted already (as events.iso does it)."""
    envelope = {
        "eventId": str(uuid.uuid4()),
        "eventType": event_type,
        "schemaVersion": CURRENT_VERSIONS[event_type],
        "occurredAt": occurred_at if isinstance(occurred_at, str) else events.iso(occurred_at),
        "aggregateId": str(todo_id),
        "userId": str(user_id),
        "correlationId": correlation_id,
        "causationId": causation_id,
        "data": {"todoId": str(todo_id), **data},
    }
    validate(envelope)
    return envelope
