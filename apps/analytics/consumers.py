"""The analytics roles.

- `runconsumer analytics` (group analytics-group): the stream processor of
  apps.analytics.processor — todo-events through four windows into the analytics-* topics,
  exactly once, with its state store.
- `runconsumer analytics-sink` (group analytics-sink-group): materialises those topics into
  the time series (apps.analytics.services), reading only committed transactions, and tells
  open dashboards that their numbers moved.
"""
import json

import orjson

from apps.analytics import facts, selectors, services
from apps.analytics.processor import WindowProcessor
from apps.analytics.windows import WINDOWS, WindowSpec
from apps.todos import events
from apps.todos.models import Team
from polystack import live, metrics
from polystack.streaming import topics
from polystack.streaming.registry import Message, NonRetriableError, consumer, decode_bytes
from polystack.streaming.topics import resolve

ANALYTICS_UPDATED = "analytics.updated"  # the live frame that tells a dashboard to refresh
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z

consumer(
    name="analytics",
    topics=[topics.TODO_EVENTS],
    group_id="analytics-group",
    dlq_topic=topics.TODO_EVENTS_DLQ,
    store="state",
    outputs=[*(spec.topic for spec in WINDOWS), topics.ANALYTICS_LATE_EVENTS],
    decoder=decode_bytes,
    consumer_config={"fetch.wait.max.ms": 20},  # todo-events has no transactions, but see the sink below
    # A backfill folds each user's events of a batch at once and sends each window once: big
    # batches send less. Live, batches are what is there (often one event).
    max_batch_size=10_000,
)(WindowProcessor)


class BadRecordError(NonRetriableError):
    """A record on an analytics-* topic that is not one of ours."""


def _time_range(start, end) -> tuple[int, int]:
    if not (type(start) is int and type(end) is int and 0 <= start <= end <= MAX_MS):
        raise BadRecordError("start and end are not a time range")
    return start, end


def _user(value) -> int:
    if not (isinstance(value, str) and events.USER_ID.fullmatch(value)):
        raise BadRecordError("userId is not a user id")
    return int(value)


def window_rows(spec: WindowSpec, payload) -> list[services.WindowRow]:
    """The rows of one window result, checked field by field (anyone can write to the topic)."""
    if not isinstance(payload, dict) or set(payload) != {"userId", "start", "end", "value"}:
        raise BadRecordError("a window record has userId, start, end and value")
    owner = _user(payload["userId"])
    start, end = _time_range(payload["start"], payload["end"])
    if not (end - start <= spec.duration_ms if spec.kind == "sliding"
            else end - start == spec.duration_ms and start % (spec.step_ms or spec.duration_ms) == 0):
        raise BadRecordError(f"not a {spec.name} window")
    try:
        rows = facts.rows_of(spec.shape, payload["value"])
    except ValueError as exc:
        raise BadRecordError(str(exc)) from None
    window_start, window_end = services.from_ms(start), services.from_ms(end)
    return [services.WindowRow(spec.name, owner, team or None, metric, dim, window_start, window_end, value)
            for team, metric, dim, value in rows]


LATE_FIELDS = {"window", "topic", "partition", "offset", "userId", "occurredMs", "lateByMs", "start", "end"}


def late_event(payload) -> dict:
    if not isinstance(payload, dict) or set(payload) != LATE_FIELDS:
        raise BadRecordError(f"a late event has {', '.join(sorted(LATE_FIELDS))}")
    if payload["window"] not in {spec.name for spec in WINDOWS}:
        raise BadRecordError("unknown window")
    if not (isinstance(payload["topic"], str) and 0 < len(payload["topic"]) <= 249):
        raise BadRecordError("bad topic")
    numbers = ("partition", "offset", "occurredMs", "lateByMs")
    if not all(type(payload[name]) is int and 0 <= payload[name] <= MAX_MS for name in numbers):
        raise BadRecordError("bad partition, offset or time")
    return {"window": payload["window"], "topic": payload["topic"], "partition": payload["partition"],
            "offset": payload["offset"], "owner_id": _user(payload["userId"]),
            "occurred_ms": payload["occurredMs"], "late_by_ms": payload["lateByMs"],
            "range_ms": _time_range(payload["start"], payload["end"])}


@consumer(
    name="analytics-sink",
    topics=[*(spec.topic for spec in WINDOWS), topics.ANALYTICS_LATE_EVENTS],
    group_id="analytics-sink-group",
    dlq_topic=topics.ANALYTICS_DLQ,
    decoder=decode_bytes,
    max_batch_size=20_000,  # one upsert statement per batch: a backfill writes fewer, bigger ones
    # Reading committed transactions only, a fetch that finds none waits fetch.wait.max.ms
    # (500 ms by default) even after the transaction commits: that would be the sink's latency.
    consumer_config={"fetch.wait.max.ms": 20},
)
class WindowSink:
    """Materialises the analytics-* window results into the analytics_window time series."""

    def __init__(self):
        self._specs = {resolve(spec.topic): spec for spec in WINDOWS}
        self._late_topic = resolve(topics.ANALYTICS_LATE_EVENTS)

    def handle_batch(self, messages: list[Message]) -> list[tuple[Message, NonRetriableError]]:
        rows, late, rejected = [], [], []
        # A window sent again later in the batch supersedes what came before (as compaction
        # would): only its last record is read.
        last = {(message.topic, message.key): message for message in messages if message.key is not None}
        for message in messages:
            if message.key is not None and last[(message.topic, message.key)] is not message:
                continue
            try:
                try:
                    payload = orjson.loads(message.value) if message.value is not None else None
                except orjson.JSONDecodeError:
                    raise BadRecordError("undecodable JSON") from None
                if message.topic == self._late_topic:
                    late.append(late_event(payload))
                else:
                    rows += window_rows(self._specs[message.topic], payload)
            except NonRetriableError as exc:
                rejected.append((message, exc))
        services.window_rows_store(rows=rows)
        services.late_events_record(events=late)
        for event in late:
            metrics.ANALYTICS_LATE.labels(event["window"]).inc()
        _tell_dashboards(rows)
        return rejected


def _tell_dashboards(rows: list[services.WindowRow]) -> None:
    """One small frame to each user whose dashboard may show these rows: the owners, the
    members of their teams, and staff (who may look at everything). The dashboard refetches."""
    if not rows:
        return
    users = {row.owner_id for row in rows}
    teams = {row.team_id for row in rows if row.team_id}
    if teams:
        users |= set(Team.members.through.objects.filter(team_id__in=teams).values_list("user_id", flat=True))
    users |= selectors.staff_ids()
    frame = json.dumps({"type": ANALYTICS_UPDATED, "windows": sorted({row.window_name for row in rows})})
    live.publish([(user_id, {"type": ANALYTICS_UPDATED, "frame": frame}) for user_id in users])
