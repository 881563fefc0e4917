"""Admin: the read tables (read-only), snapshots, and replay/snapshot jobs with progress."""
from django.contrib import admin, messages
from django.db import transaction

from apps.projections.models import ParkedEvent, ProjectionJob, Snapshot, TodoEvent, TodoView
from apps.projections.tasks import run_projection_job
from polystack.admin import ReadOnlyAdmin


@admin.register(TodoView)
class TodoViewAdmin(ReadOnlyAdmin):
    list_display = ["id", "title", "user_id", "priority", "completed", "assigned_to", "version", "deleted_at"]
    list_filter = ["completed", "priority"]
    search_fields = ["title", "id"]


@admin.register(TodoEvent)
class TodoEventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "event_type", "todo_id", "aggregate_version", "occurred_at", "partition", "offset"]
    list_filter = ["event_type"]
    search_fields = ["todo_id", "event_id"]


@admin.register(ParkedEvent)
class ParkedEventAdmin(ReadOnlyAdmin):
    """Events that arrived before a version they follow; they apply when it comes. One that
    stays here long points at a lost or dead-lettered event of that todo."""

    list_display = ["todo_id", "aggregate_version", "reason", "topic", "partition", "offset", "parked_at"]
    search_fields = ["todo_id", "event_id"]


@admin.register(Snapshot)
class SnapshotAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "reason", "todo_count", "event_count", "offsets"]


@admin.register(ProjectionJob)
class ProjectionJobAdmin(admin.ModelAdmin):
    """Add a job to replay the projection (from the beginning or the latest snapshot) or to
    take a snapshot; a Celery worker runs it and the list shows its progress."""

    list_display = ["id", "kind", "status", "progress", "requested_by", "created_at", "started_at", "finished_at"]
    readonly_fields = ["status", "progress", "requested_by", "created_at", "started_at", "finished_at"]

    def has_change_permission(self, request, obj=None):
        return obj is None  # jobs are added, not edited

    def save_model(self, request, obj, form, change):
        obj.requested_by = request.user
        super().save_model(request, obj, form, change)
        transaction.on_commit(lambda: run_projection_job.delay(obj.pk))
        messages.info(request, "The job is queued; this list shows its progress (reload to follow it).")
