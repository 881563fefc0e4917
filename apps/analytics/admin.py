"""Admin: the events the analytics windows dropped as late, to look at (the stream writes them)."""
from django.contrib import admin

from apps.analytics.models import LateEvent
from polystack.admin import ReadOnlyAdmin


@admin.register(LateEvent)
class LateEventAdmin(ReadOnlyAdmin):
    list_display = ["window_name", "window_start", "owner_id", "occurred_at", "late_by_ms", "topic", "partition",
                    "offset", "recorded_at"]
    list_filter = ["window_name"]
    search_fields = ["owner_id", "topic"]
    date_hierarchy = "occurred_at"
