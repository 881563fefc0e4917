"""A reminder's type names how long before the due date it comes (ISO 8601 durations)."""
from datetime import UTC, datetime, timedelta

import pytest

from apps.reminders.services import reminder_type

DUE = datetime(2026, 3, 5, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(("before", "expected"), [
    (timedelta(days=1), "P1D"),
    (timedelta(hours=1), "PT1H"),
    (timedelta(days=1, hours=2, minutes=30), "P1DT2H30M"),
    (timedelta(minutes=10, seconds=5), "PT10M5S"),
    (timedelta(milliseconds=500), "PT0.5S"),
    (timedelta(0), "PT0S"),
    (timedelta(days=400), "P400D"),
])
def test_the_type_is_the_time_before_the_due_date(before, expected):
    assert reminder_type(due_date=DUE, remind_at=DUE - before) == expected
