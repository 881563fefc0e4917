"""Log lines as text, or as one JSON object a line (`LOG_FORMAT=json`), and the line every
consumer writes for each event it handled: where it was (topic, partition, offset), what it was
(eventType, eventId) and whose request it came from (correlationId), by which consumer and
group. Following a correlationId through every role's log is following one command through the
system; the JSON form is for a log collector to index.

A batch's event lines are written at once, as one log record of many lines, each already whole
(time, level, logger): a record per event cost the consumer twelve times its no-op speed
(`make bench runner`), a write per batch costs a fraction. They go to the `polystack.events`
logger at INFO; `LOG_EVENTS=0` (or that logger at WARNING) turns them off.
"""
import logging
from collections.abc import Iterable
from datetime import UTC, datetime

import orjson
from django.conf import settings

EVENTS = logging.getLogger("polystack.events")
_HEADERS = ("eventType", "eventId", "correlationId")
MAX_HEADER_CHARS = 100  # a correlationId is at most 100 (polystack.api); a forged one is cut there


class JsonFormatter(logging.Formatter):
    """{"time", "level", "logger", "message", ...the record's `fields`, "exception"}."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": _iso(record.created), "level": record.levelname, "logger": record.name,
                "message": record.getMessage()}
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def _iso(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


def events_logged() -> bool:
    """Whether event lines are written now (asked once a batch, not once a message)."""
    return EVENTS.isEnabledFor(logging.INFO)


def _fields(raw, consumer: str, group: str) -> dict:
    fields = {"consumer": consumer, "group": group, "topic": raw.topic(), "partition": raw.partition(),
              "offset": raw.offset(), "eventType": None, "eventId": None, "correlationId": None}
    for name, value in raw.headers() or ():
        if name in _HEADERS and value is not None:
            fields[name] = _printable(value.decode("utf-8", "replace")[:MAX_HEADER_CHARS])
    return fields


def _printable(text: str) -> str:
    """Headers are anyone's who can write to the topic: a newline in one must not forge a log line."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _text(fields: dict) -> str:
    return (f"handled {fields['topic']}[{fields['partition']}]@{fields['offset']} {fields['eventType']} "
            f"eventId={fields['eventId']} correlationId={fields['correlationId']} "
            f"consumer={fields['consumer']} group={fields['group']}")


def events_handled(raws: Iterable, *, consumer: str, group: str) -> None:
    """The lines of the messages (confluent_kafka.Message) a consumer has handled, in one write."""
    if settings.LOG_FORMAT == "json":
        time = _iso(datetime.now(UTC).timestamp())
        lines = [orjson.dumps({"time": time, "level": "INFO", "logger": EVENTS.name, "message": _text(fields),
                               **fields}).decode()
                 for fields in (_fields(raw, consumer, group) for raw in raws)]
    else:  # as the "plain" formatter's %(asctime)s: local time
        now = datetime.now()
        prefix = f"{now.strftime('%Y-%m-%d %H:%M:%S')},{now.microsecond // 1000:03d} INFO {EVENTS.name} "
        lines = [prefix + _text(_fields(raw, consumer, group)) for raw in raws]
    if lines:
        EVENTS.info("\n".join(lines))  # the events handler writes the message as it is
