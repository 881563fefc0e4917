"""Admin: teams; the outbox (what waits for the relay) and the write-side state, read-only."""
from django.contrib import admin

from apps.todos.models import OutboxEvent, Team, TodoState
from polystack.admin import ReadOnlyAdmin


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "event_type", "event_id", "topic", "key", "correlation_id", "created_at"]
    list_filter = ["event_type"]
    search_fields = ["event_id", "key", "correlation_id"]


@admin.register(TodoState)
class TodoStateAdmin(ReadOnlyAdmin):
    list_display = ["id", "owner", "version", "deleted", "completed", "assigned_to"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "member_count", "created_at"]
    search_fields = ["name", "owner__username"]
    filter_horizontal = ["members"]

    @admin.display(description="members")
    def member_count(self, team: Team) -> int:
        return team.members.count()

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        form.instance.members.add(form.instance.owner)  # the owner is always a member
