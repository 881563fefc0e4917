"""Socket frames and positions (apps.realtime.sockets), pure."""
import json

import pytest

from apps.realtime.sockets import event_frame, parse_positions


def test_an_event_frame_is_json_with_its_position_and_when_live_its_kafka_time():
    envelope = {"eventId": "e", "data": {"title": "ü \"quoted\" x"}}
    frame = json.loads(event_frame(envelope, 3, 41, 1_700_000_000_000))
    assert frame == {"type": "event", "event": envelope, "position": {"partition": 3, "offset": 41},
                     "publishedAt": 1_700_000_000_000}
    assert "publishedAt" not in json.loads(event_frame(json.dumps(envelope), 0, 1))


@pytest.mark.parametrize(("raw", "parsed"), [
    ("", {}),
    ("0:41", {0: 41}),
    ("0:41,3:-1", {0: 41, 3: -1}),
    ("0:41,x:1", None),
    ("0:41;3:2", None),
    ("1" * 6 + ":1", None),  # a partition past 5 digits
    (",".join(f"{p}:1" for p in range(5000)), None),  # longer than any real topic needs
])
def test_positions_are_partition_offset_pairs(raw, parsed):
    assert parse_positions(raw) == parsed
