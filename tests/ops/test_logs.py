"""Each consumer logs one line per event it handled — correlationId, eventId, group, partition,
offset — as JSON with LOG_FORMAT=json: a command followed by its correlation id through the logs."""
import json
import logging
import sys

from apps.projections.models import TodoEvent
from polystack import logs
from polystack.logs import JsonFormatter
from tests.helpers import api_client, unique, wait_until


def json_lines(path) -> list[dict]:
    lines = []
    for line in path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line written before logging was set up (none expected, but not ours to judge)
    return lines


def test_each_event_handled_is_one_json_line_naming_its_command(roles, user_factory, tmp_path):
    group = unique("projection")
    roles("runrelay")
    roles("runconsumer", "projections", "--group-id", group, env={"LOG_FORMAT": "json"})
    alice = api_client(user_factory())
    todo = alice.post("/api/todos/", {"title": "traced"}, format="json", HTTP_X_CORRELATION_ID="trace-me-1").json()
    alice.patch(f"/api/todos/{todo['id']}/", {"title": "traced again"}, format="json",
                HTTP_X_CORRELATION_ID="trace-me-2")
    log = next(tmp_path.glob("role-*-runconsumer-projections.log"))

    def handled():
        return [line for line in json_lines(log) if line.get("logger") == "polystack.events"]

    lines = wait_until(lambda: len(handled()) == 2 and handled(), what="two event lines")
    events = {str(e.event_id): e for e in TodoEvent.objects.filter(todo_id=todo["id"])}
    assert [line["correlationId"] for line in lines] == ["trace-me-1", "trace-me-2"]
    assert [line["eventType"] for line in lines] == ["TodoCreated", "TodoUpdated"]
    for line in lines:
        event = events[line["eventId"]]
        assert (line["partition"], line["offset"]) == (event.partition, event.offset)
        assert line["group"] == group and line["consumer"] == "projections" and line["level"] == "INFO"
        assert line["message"].startswith(f"handled {line['topic']}[{event.partition}]@{event.offset} ")


def test_the_json_formatter_keeps_the_exception_and_any_text():
    try:
        raise ValueError('a "quoted"\nline')
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed on %s", ("\u2603",), sys.exc_info())
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "failed on \u2603" and line["level"] == "ERROR"
    assert 'ValueError: a "quoted"\nline' in line["exception"]


class ForgedMessage:
    """What a consumer's log line reads of a message: anyone who can write to the topic wrote it."""

    def topic(self):
        return "todo-events"

    def partition(self):
        return 0

    def offset(self):
        return 7

    def headers(self):
        return [("correlationId", b"x\n2026-01-01 00:00:00,000 INFO polystack.events handled forged" + b"y" * 5000),
                ("eventId", b"\xff\x1b[31m")]


def test_a_forged_header_writes_one_short_line(settings, caplog):
    settings.LOG_FORMAT = "plain"
    with caplog.at_level(logging.INFO, logger="polystack.events"):
        logs.events_handled([ForgedMessage()], consumer="projections", group="g")
    [record] = caplog.records
    line = record.getMessage()
    assert "\n" not in line and "\x1b" not in line, "no line or terminal escape forged"
    assert "correlationId=x\\n2026" in line and len(line) < 400
