"""Input validation and output shape of the todo API (camelCase, as the events)."""
import re

from django.contrib.auth import get_user_model
from rest_framework import serializers

from apps.projections.models import TodoView
from apps.todos.events import PRIORITIES


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know, naming them, instead of ignoring a typo silently."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class CommandSerializer(StrictSerializer):
    expectedVersion = serializers.IntegerField(min_value=1, required=False)


class TodoCreateSerializer(StrictSerializer):
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    priority = serializers.ChoiceField(choices=PRIORITIES, required=False, default="medium")
    dueDate = serializers.DateTimeField(required=False, allow_null=True, default=None)
    teamId = serializers.UUIDField(required=False, allow_null=True, default=None)


class TodoUpdateSerializer(CommandSerializer):
    title = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True)

    def validate(self, attrs):
        if "title" not in attrs and "description" not in attrs:
            raise serializers.ValidationError({"title": ["Give a title or a description to change."]})
        return attrs


# A route's id: a UUID in its canonical form (a loose pattern let 36 dashes through to uuid.UUID).
UUID_ROUTE = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# A user id as events carry it: ASCII digits that fit a bigint (str.isdigit() accepts "²").
USER_ID = re.compile(r"\A[1-9][0-9]{0,17}\Z")  # anchored: validators search


def active_user(user_id: str):
    """The active user with this id (a string, as in events), or a field error."""
    pk = int(user_id) if USER_ID.fullmatch(user_id) else None
    user = get_user_model().objects.filter(pk=pk, is_active=True).first() if pk else None
    if user is None:
        raise serializers.ValidationError("No such user.")
    return user


class TodoAssignSerializer(CommandSerializer):
    assignedTo = serializers.CharField(max_length=64)

    def validate_assignedTo(self, value):
        return active_user(value)


class TodoPrioritizeSerializer(CommandSerializer):
    priority = serializers.ChoiceField(choices=PRIORITIES)


class EventPageSerializer(StrictSerializer):
    afterVersion = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False, default=0)
    limit = serializers.IntegerField(min_value=1, max_value=1000, required=False, default=500)


class TodoFilterSerializer(StrictSerializer):
    completed = serializers.BooleanField(required=False, allow_null=True, default=None)
    priority = serializers.ChoiceField(choices=PRIORITIES, required=False)
    assignedTo = serializers.IntegerField(min_value=1, required=False)
    teamId = serializers.UUIDField(required=False)
    page = serializers.IntegerField(min_value=1, required=False)
    page_size = serializers.IntegerField(min_value=1, max_value=1000, required=False)


class TodoSerializer(serializers.ModelSerializer):
    completedAt = serializers.DateTimeField(source="completed_at", allow_null=True)
    assignedTo = serializers.SerializerMethodField()
    userId = serializers.SerializerMethodField()
    dueDate = serializers.DateTimeField(source="due_date", allow_null=True)
    teamId = serializers.UUIDField(source="team_id", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")

    class Meta:
        model = TodoView
        fields = ["id", "title", "description", "priority", "completed", "completedAt", "assignedTo", "userId",
                  "dueDate", "teamId", "createdAt", "updatedAt", "version"]

    def get_assignedTo(self, todo) -> str | None:
        return None if todo.assigned_to is None else str(todo.assigned_to)

    def get_userId(self, todo) -> str:
        return str(todo.user_id)


class AcceptedSerializer(serializers.Serializer):
    """The answer when the projection has not caught up within the bound (202)."""

    id = serializers.UUIDField()
    url = serializers.CharField()
    version = serializers.IntegerField()
