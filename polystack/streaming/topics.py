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
DEVICE_SYNC_EVENTS_DLQ = "device-sync-events-dlq"
ANALYTICS_HOURLY = "analytics-hourly"
ANALYTICS_DAILY = "analytics-daily"
ANALYTICS_ROLLING = "analytics-rolling-24h"
ANALYTICS_ACTIVITY = "analytics-activity-60m"
ANALYTICS_LATE_EVENTS = "analytics-late-events"
ANALYTICS_DLQ = "analytics-dlq"

_DLQ = {"retention.ms": str(30 * DAY_MS)}
_RETRY = {"retention.ms": str(7 * DAY_MS)}
RETRIES = 3  # retry topics declared per topic that has them (a RetryPolicy may use fewer)


def retry_topic(topic: str, level: int) -> str:
    """The topic a message of `topic` waits in before its retry number `level` (polystack.streaming.retry)."""
    return f"{topic}-retry-{level}"


def _retry_specs(topic: str, partitions: int) -> tuple["TopicSpec", ...]:
    return tuple(TopicSpec(retry_topic(topic, level), partitions=partitions, config=_RETRY,
                           description=f"{topic} messages waiting for retry {level} of a consumer with a retry policy.")
                 for level in range(1, RETRIES + 1))
_WINDOWED_AGGREGATE = {"cleanup.policy": "compact"}

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        TODO_EVENTS,
        partitions=6,
        description="The event store: every todo change, keyed by the owner's userId. Kept forever.",
        config={"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"},
    ),
    *_retry_specs(TODO_EVENTS, partitions=6),
    TopicSpec(TODO_EVENTS_DLQ, partitions=1, description="todo-events a consumer could not handle.", config=_DLQ),
    TopicSpec(REMINDER_EVENTS, partitions=3, description="ReminderDue and friends, keyed by userId."),
    *_retry_specs(REMINDER_EVENTS, partitions=3),
    TopicSpec(REMINDER_EVENTS_DLQ, partitions=1, description="reminder-events a consumer could not handle.", config=_DLQ),
    # Written in Kafka transactions by the sync coordinator (apps.sync): read it read_committed.
    TopicSpec(DEVICE_SYNC_EVENTS, partitions=6, config={"retention.ms": str(7 * DAY_MS)},
              description="Each todo event once per user who sees it, with the todo after it, keyed by that "
                          "user's id: a user's whole stream in one partition, a device's position one offset."),
    TopicSpec(DEVICE_SYNC_EVENTS_DLQ, partitions=1, config=_DLQ,
              description="device-sync-events records the sync sink could not store."),
    # Window results of apps.analytics, keyed "<userId>:<start>:<end>": compaction keeps each
    # window's latest (absolute) value, which is all a reader needs.
    TopicSpec(ANALYTICS_HOURLY, partitions=3, config=_WINDOWED_AGGREGATE,
              description="Each user's activity per hour (tumbling window): created, completed, who acted."),
    TopicSpec(ANALYTICS_DAILY, partitions=3, config=_WINDOWED_AGGREGATE,
              description="The same per day (tumbling window)."),
    TopicSpec(ANALYTICS_ROLLING, partitions=3, config=_WINDOWED_AGGREGATE,
              description="Created and completed over 24 hours, every 6 hours (hopping window)."),
    TopicSpec(ANALYTICS_ACTIVITY, partitions=3, config=_WINDOWED_AGGREGATE,
              description="Each user's events in the 60 minutes up to each event (sliding window)."),
    TopicSpec(ANALYTICS_LATE_EVENTS, partitions=1, config=_DLQ,
              description="Events that came after a window's grace period, and the window they missed."),
    TopicSpec(ANALYTICS_DLQ, partitions=1, description="analytics-* records the sink could not store.", config=_DLQ),
)

BY_NAME: dict[str, TopicSpec] = {spec.name: spec for spec in TOPICS}


def resolve(name: str) -> str:
    """The topic's name on the cluster: KAFKA_TOPIC_PREFIX + name. A prefix lets several
    deployments (or test runs) share one cluster without sharing topics."""
    return settings.KAFKA_TOPIC_PREFIX + name


def resolved_specs() -> list[TopicSpec]:
    return [replace(spec, name=resolve(spec.name)) for spec in TOPICS]
