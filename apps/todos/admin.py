"""Admin: the outbox (what waits for the relay) and the write-side state, read-only."""
from django.contrib import admin

from apps.projections.admin import ReadOnlyAdmin
from apps.todos.models import OutboxEvent, TodoState


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "event_type", "event_id", "topic", "key", "correlation_id", "created_at"]
    list_filter = ["event_type"]
    search_fields = ["event_id", "key", "correlation_id"]


@admin.register(TodoState)
class TodoStateAdmin(ReadOnlyAdmin):
    list_display = ["id", "owner", "version", "deleted", "completed", "assigned_to"]
