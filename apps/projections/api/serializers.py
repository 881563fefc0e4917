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
