"""Log lines as text, or as one JSON object a line (`LOG_FORMAT=json`), and the line every
consumer writes for each event it handled: where it was (topic, partition, offset), what it was
(eventType, eventId) and whose request it came from (correlationId), by which consumer and
group. Following a correlationId through every role's log is following one command through the
system; the JSON form is for a log collector to index.

The event lines go to the `polystack.events` logger at INFO: `LOG_EVENTS=0` (or that logger at
WARNING) turns them off where their cost counts (`make bench` measures it).
"""
import logging
from datetime import UTC, datetime

import orjson

EVENTS = logging.getLogger("polystack.events")
_HEADERS = {"eventType": "eventType", "eventId": "eventId", "correlationId": "correlationId"}


class JsonFormatter(logging.Formatter):
    """{"time", "level", "logger", "message", ...the record's `fields`, "exception"}."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def events_logged() -> bool:
    """Whether event lines are written now (asked once a batch, not once a message)."""
    return EVENTS.isEnabledFor(logging.INFO)


def event_handled(raw, *, consumer: str, group: str) -> None:
    """The line for one message (a confluent_kafka.Message) its consumer has handled."""
    fields = {"consumer": consumer, "group": group, "topic": raw.topic(), "partition": raw.partition(),
              "offset": raw.offset(), "eventType": None, "eventId": None, "correlationId": None}
    for name, value in raw.headers() or ():
        if name in _HEADERS and value is not None:
            fields[name] = value.decode("utf-8", "replace")
    EVENTS.info("handled %s[%d]@%d %s eventId=%s correlationId=%s consumer=%s group=%s", fields["topic"],
                fields["partition"], fields["offset"], fields["eventType"], fields["eventId"],
                fields["correlationId"], consumer, group, extra={"fields": fields})
