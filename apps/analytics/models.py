"""Analytics tables. The time series — window results (`analytics_window`) and health samples
(`analytics_health_sample`) — are PostgreSQL tables partitioned by time, created by this app's
migrations in SQL (Django has no partitioned tables) and written by apps.analytics.services;
apps.analytics.partitions keeps their partitions. The late events are an ordinary model."""
from django.db import models


class LateEvent(models.Model):
    """An event that came later than the grace period, and the window it was dropped from.
    One row per (window store, message, window): recording it again is a no-op, so a replay
    after a crash counts each drop once."""

    window_name = models.CharField(max_length=32)
    topic = models.CharField(max_length=249)
    partition = models.IntegerField()
    offset = models.BigIntegerField()
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    owner_id = models.BigIntegerField()
    occurred_at = models.DateTimeField(db_index=True)
    late_by_ms = models.BigIntegerField()
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["window_name", "topic", "partition", "offset", "window_start"],
                                    name="analytics_late_event_once"),
        ]

    def __str__(self) -> str:
        return f"{self.window_name} {self.topic}[{self.partition}]@{self.offset} late by {self.late_by_ms} ms"
