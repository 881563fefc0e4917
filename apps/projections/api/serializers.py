"""The JSON shape of a projected todo (camelCase, as the events), for the REST API and the page."""
from rest_framework import serializers

from apps.projections.models import TodoView


class TodoSerializer(serializers.ModelSerializer):
    completedAt = serializers.DateTimeField(source="completed_at", allow_null=True)
    assignedTo = serializers.SerializerMethodField()
    userId = serializers.SerializerMethodField()
    dueDate = serializers.DateTimeField(source="due_date", allow_null=True)
    reminderTimes = serializers.ListField(source="reminder_times", child=serializers.DateTimeField())
    teamId = serializers.UUIDField(source="team_id", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")

    class Meta:
        model = TodoView
        fields = ["id", "title", "description", "priority", "completed", "completedAt", "assignedTo", "userId",
                  "dueDate", "reminderTimes", "teamId", "createdAt", "updatedAt", "version"]

    def get_assignedTo(self, todo) -> str | None:
        return None if todo.assigned_to is None else str(todo.assigned_to)

    def get_userId(self, todo) -> str:
        return str(todo.user_id)


class TodoAtSerializer(TodoSerializer):
    """A todo as it was (time travel): the same shape, and when it was deleted, if it was."""

    deletedAt = serializers.DateTimeField(source="deleted_at", allow_null=True)

    class Meta(TodoSerializer.Meta):
        fields = [*TodoSerializer.Meta.fields, "deletedAt"]


UNCHANGING = {"version", "updatedAt"}  # every event moves them: not what it changed


def changes(before: dict | None, after: dict) -> list[dict]:
    """What one event changed, field by field as the API shows them (TodoAtSerializer's data):
    [{"field", "before", "after"}]; a creation's fields have `before` null."""
    before = before or {}
    return [{"field": field, "before": before.get(field), "after": value} for field, value in after.items()
            if field not in UNCHANGING and before.get(field) != value and (before or value not in (None, [], "", False))]
