"""Every Kafka topic of PolyStack, declared as code; `manage.py ensuretopics` applies them.

Replication factor is a property of the cluster, not of the topic, so it comes from settings
(KAFKA_REPLICATION_FACTOR: 1 locally, 3 in a cluster).
"""
from dataclasses import dataclass, field, replace

from django.conf import settings

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    description: str
    config: dict[str, str] = field(default_factory=dict)


TODO_EVENTS = "todo-events"
TODO_EVENTS_DLQ = "todo-events-dlq"
REMINDER_EVENTS = "reminder-events"
REMINDER_EVENTS_DLQ = "reminder-events-dlq"
DEVICE_SYNC_EVENTS = "device-sync-events"
ANALYTICS_COMPLETED_HOURLY = "analytics-completed-hourly"
ANALYTICS_COMPLETION_TIME_HOURLY = "analytics-completion-time-hourly"
ANALYTICS_USER_ACTIVITY_HOURLY = "analytics-user-activity-hourly"

_DLQ = {"retention.ms": str(30 * DAY_MS)}
_WINDOWED_AGGREGATE = {"cleanup.policy": "compact"}

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        TODO_EVENTS,
        partitions=6,
        description="The event store: every todo change, keyed by the owner's userId. Kept forever.",
        config={"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"},
    ),
    TopicSpec(TODO_EVENTS_DLQ, partitions=1, description="todo-events a consumer could not handle.", config=_DLQ),
    TopicSpec(REMINDER_EVENTS, partitions=3, description="ReminderDue and friends, keyed by userId."),
    TopicSpec(REMINDER_EVENTS_DLQ, partitions=1, description="reminder-events a consumer could not handle.", config=_DLQ),
    TopicSpec(DEVICE_SYNC_EVENTS, partitions=6, description="Per-device sync events, keyed by userId."),
    TopicSpec(
        ANALYTICS_COMPLETED_HOURLY,
        partitions=1,
        description="Todos completed per hour window; the latest count per window.",
        config=_WINDOWED_AGGREGATE,
    ),
    TopicSpec(
        ANALYTICS_COMPLETION_TIME_HOURLY,
        partitions=1,
        description="Average time from creation to completion per hour window.",
        config=_WINDOWED_AGGREGATE,
    ),
    TopicSpec(
        ANALYTICS_USER_ACTIVITY_HOURLY,
        partitions=1,
        description="Events per user per hour window.",
        config=_WINDOWED_AGGREGATE,
    ),
)

BY_NAME: dict[str, TopicSpec] = {spec.name: spec for spec in TOPICS}


def resolve(name: str) -> str:
    """The topic's name on the cluster: KAFKA_TOPIC_PREFIX + name. A prefix lets several
    deployments (or test runs) share one cluster without sharing topics."""
    return settings.KAFKA_TOPIC_PREFIX + name


def resolved_specs() -> list[TopicSpec]:
    return [replace(spec, name=resolve(spec.name)) for spec in TOPICS]
