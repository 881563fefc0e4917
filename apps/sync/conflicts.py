"""Concurrent edits from devices: which of a mutation's changes apply, which lose, which become
conflicts for a person to resolve (pure: no I/O).

A device edits its local copy offline and later pushes each edit as a mutation naming the todo
version it had (`baseVersion`) and its hybrid logical clock (`hlc`). The todo's field clocks
(apps.todos: who last changed each field, at which version, at which hlc) tell a sequential edit
from a concurrent one: a field changed after the base version by anyone but this device is a
concurrent change. Changes to different fields never conflict: each applies. For the same field
the policy of the todo's owner decides:

    lww     last write wins: the later hlc, ties broken by device id (a change made without a
            device, through the REST API, has the server's clock and the lowest id)
    merge   the field's rule where it has a natural one (MERGE_RULES: the higher priority),
            last write wins where it has none
    manual  the todo keeps its value; a conflict is recorded with both values, for a person to
            pick one (or write a third)

Some outcomes hold under every policy: a deleted todo stays deleted (no event undoes a
deletion) and an edit of it is reported lost; a completed todo stays completed (no command
uncompletes one), so completing never conflicts.

Clocks: "<wall ms>:<counter>". A device's clock may run ahead of the server's by at most
MAX_SKEW_MS: beyond it, the mutation is refused (a clock a year ahead would win every write).
"""
import re
from dataclasses import dataclass, field
from typing import Any

LWW, MERGE, MANUAL = "lww", "merge", "manual"
POLICIES = [(LWW, "Last write wins"), (MERGE, "Merge by field rules, else last write wins"),
            (MANUAL, "Ask me: keep the server's value and show both")]
MAX_SKEW_MS = 60_000
_HLC = re.compile(r"\A([0-9]{1,15}):([0-9]{1,5})\Z")
PRIORITY_RANK = {"low": 0, "medium": 1, "high": 2, "urgent": 3}


class ClockError(ValueError):
    """A clock that is not "<wall ms>:<counter>", or too far ahead of the server's."""


@dataclass(frozen=True, order=True)
class Hlc:
    wall_ms: int
    counter: int

    @classmethod
    def parse(cls, text: Any) -> "Hlc":
        match = _HLC.fullmatch(text) if isinstance(text, str) else None
        if match is None or int(match[2]) > 0xFFFF:
            raise ClockError("hlc must be \"<wall ms>:<counter>\" (counter at most 65535)")
        return cls(int(match[1]), int(match[2]))

    def __str__(self) -> str:
        return f"{self.wall_ms}:{self.counter}"


def check_skew(hlc: Hlc, *, now_ms: int, bound_ms: int = MAX_SKEW_MS) -> None:
    if hlc.wall_ms > now_ms + bound_ms:
        raise ClockError(f"the device's clock is {(hlc.wall_ms - now_ms) / 1000:.0f} s ahead of the server's "
                         f"(at most {bound_ms / 1000:.0f} s): set its time")


def _higher_priority(local: str, remote: str) -> str:
    return max(local, remote, key=lambda priority: PRIORITY_RANK.get(priority, -1))


# Fields with a natural merge (policy "merge"): f(local value, remote value) -> the value kept.
MERGE_RULES = {"priority": _higher_priority}


@dataclass
class Outcome:
    """What to do with a mutation's changes: `apply` these values; `lost` maps each field whose
    change lost to a concurrent one to the value kept; `conflicts` are the fields a person
    decides (manual), each with the value kept meanwhile."""

    apply: dict[str, Any] = field(default_factory=dict)
    lost: dict[str, Any] = field(default_factory=dict)
    conflicts: dict[str, Any] = field(default_factory=dict)


def concurrent(clock: dict | None, *, base_version: int, device_id: str) -> bool:
    """The field was changed after the device's base version, by someone else than the device."""
    return clock is not None and clock["version"] > base_version and clock["device"] != device_id


def later(hlc: Hlc, device_id: str, clock: dict) -> bool:
    """This device's write is later than the one in `clock` (ties broken by device id)."""
    return (hlc, device_id) > (Hlc.parse(clock["hlc"]), clock["device"] or "")


def decide(*, changes: dict[str, Any], current: dict[str, Any], clocks: dict[str, dict], base_version: int,
           device_id: str, hlc: Hlc, policy: str) -> Outcome:
    """The outcome of a mutation setting `changes` on a todo whose values are `current`."""
    outcome = Outcome()
    for name, value in changes.items():
        if value == current[name]:
            continue  # nothing to change, nothing to dispute
        clock = clocks.get(name)
        if not concurrent(clock, base_version=base_version, device_id=device_id):
            outcome.apply[name] = value
        elif policy == MANUAL:
            outcome.conflicts[name] = current[name]
        else:
            rule = MERGE_RULES.get(name) if policy == MERGE else None
            kept = rule(value, current[name]) if rule else (value if later(hlc, device_id, clock) else current[name])
            if kept == current[name]:
                outcome.lost[name] = kept
            else:
                outcome.apply[name] = kept
    return outcome
