"""Input validation of the todo commands and queries (camelCase, as the events)."""
from datetime import UTC, datetime

from django.contrib.auth import get_user_model
from rest_framework import serializers

from apps.todos.events import PRIORITIES, USER_ID
from apps.todos.services import MAX_REMINDERS
from polystack.api import StrictSerializer

EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)  # a day's margin either side: reminders are a day
LATEST = datetime(9999, 12, 30, tzinfo=UTC)  # before the due date, and years have four digits


class MomentField(serializers.DateTimeField):
    """An instant the events can carry and their arithmetic cannot overflow."""

    def to_internal_value(self, value):
        moment = super().to_internal_value(value)
        if not EARLIEST <= moment <= LATEST:
            raise serializers.ValidationError("Give a moment between 1970 and 9999.")
        return moment


class ScheduleFields(serializers.Serializer):
    reminderTimes = serializers.ListField(child=MomentField(), max_length=MAX_REMINDERS, required=False,
                                          allow_null=True, default=None)


class CommandSerializer(StrictSerializer):
    expectedVersion = serializers.IntegerField(min_value=1, required=False)


class TodoCreateSerializer(StrictSerializer, ScheduleFields):
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    priority = serializers.ChoiceField(choices=PRIORITIES, required=False, default="medium")
    dueDate = MomentField(required=False, allow_null=True, default=None)
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


class TodoScheduleSerializer(CommandSerializer, ScheduleFields):
    """The whole schedule: `dueDate` (null clears it) and, optionally, the reminder times
    (without them: a day and an hour before the due date)."""

    dueDate = MomentField(allow_null=True)


class TodoSnoozeSerializer(StrictSerializer):
    """When to be reminded again: `until` a moment, or in `minutes` (one of them)."""

    until = MomentField(required=False)
    minutes = serializers.IntegerField(min_value=1, max_value=7 * 24 * 60, required=False)

    def validate(self, attrs):
        if ("until" in attrs) == ("minutes" in attrs):
            raise serializers.ValidationError({"until": ["Give `until` or `minutes`, one of them."]})
        return attrs


class SnoozedSerializer(serializers.Serializer):
    todoId = serializers.UUIDField()
    snoozeUntil = serializers.DateTimeField()


class EventPageSerializer(StrictSerializer):
    afterVersion = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False, default=0)
    limit = serializers.IntegerField(min_value=1, max_value=1000, required=False, default=500)


class TodoAtQuerySerializer(StrictSerializer):
    """Time travel: `version` or `asOf` (an instant: the events that occurred by then), not both."""

    version = serializers.IntegerField(min_value=1, max_value=2**31 - 1, required=False)
    asOf = MomentField(required=False)

    def validate(self, attrs):
        if "version" in attrs and "asOf" in attrs:
            raise serializers.ValidationError("Give version or asOf, not both.")
        return attrs


class TodoFilterSerializer(StrictSerializer):
    completed = serializers.BooleanField(required=False, allow_null=True, default=None)
    deleted = serializers.BooleanField(required=False, default=False)
    priority = serializers.ChoiceField(choices=PRIORITIES, required=False)
    assignedTo = serializers.IntegerField(min_value=1, required=False)
    teamId = serializers.UUIDField(required=False)
    page = serializers.IntegerField(min_value=1, required=False)
    page_size = serializers.IntegerField(min_value=1, max_value=1000, required=False)


class AcceptedSerializer(serializers.Serializer):
    """The answer when the projection has not caught up within the bound (202)."""

    id = serializers.UUIDField()
    url = serializers.CharField()
    version = serializers.IntegerField()
