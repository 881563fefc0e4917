"""The JSON shape of a notification (the API and live frames alike) and the API's inputs."""
from rest_framework import serializers

from apps.notifications.models import CATEGORIES, CHANNELS, Notification
from polystack.api import StrictSerializer


def notification_json(notification: Notification) -> dict:
    return {
        "id": notification.id, "eventId": str(notification.event_id), "eventType": notification.event_type,
        "category": notification.category, "channel": notification.channel, "todoId": str(notification.todo_id),
        "subject": notification.subject, "body": notification.body, "status": notification.status,
        "attempts": notification.attempts, "lastError": notification.last_error,
        "createdAt": notification.created_at.isoformat().replace("+00:00", "Z"),
        "readAt": notification.read_at.isoformat().replace("+00:00", "Z") if notification.read_at else None,
    }


class NotificationFilter(StrictSerializer):
    channel = serializers.ChoiceField(choices=[c for c, _ in CHANNELS], required=False)
    unread = serializers.BooleanField(required=False, allow_null=True, default=None)
    page = serializers.IntegerField(min_value=1, required=False)
    page_size = serializers.IntegerField(min_value=1, max_value=200, required=False)


class PreferenceSerializer(StrictSerializer):
    category = serializers.ChoiceField(choices=[c for c, _ in CATEGORIES])
    channel = serializers.ChoiceField(choices=[c for c, _ in CHANNELS])
    enabled = serializers.BooleanField()


class PreferencesSerializer(StrictSerializer):
    preferences = PreferenceSerializer(many=True, allow_empty=False)
