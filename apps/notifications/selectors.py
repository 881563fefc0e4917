"""Reads of notifications and preferences, always of one user."""
from django.db.models import QuerySet

from apps.notifications.models import CATEGORIES, CHANNELS, IN_APP, Notification, NotificationPreference


def switched_off(*, user_id: int, category: str | None = None) -> set[tuple[str, str]]:
    """The (category, channel) pairs the user turned off (everything else is on)."""
    choices = NotificationPreference.objects.filter(user_id=user_id, enabled=False)
    if category is not None:
        choices = choices.filter(category=category)
    return set(choices.values_list("category", "channel"))


def enabled_channels(*, user_id: int, category: str) -> list[str]:
    off = switched_off(user_id=user_id, category=category)
    return [channel for channel, _ in CHANNELS if (category, channel) not in off]


def preferences_of(*, user_id: int) -> list[dict]:
    """Every category x channel with its setting (on unless switched off)."""
    off = switched_off(user_id=user_id)
    return [
        {"category": category, "label": label, "channel": channel, "enabled": (category, channel) not in off}
        for category, label in CATEGORIES for channel, _ in CHANNELS
    ]


def unread_count(*, user_id: int) -> int:
    return Notification.objects.filter(recipient_id=user_id, channel=IN_APP, read_at__isnull=True).count()


def notification_list(*, user_id: int, channel: str | None = None, unread: bool | None = None) -> QuerySet:
    """The user's notifications, newest first."""
    notifications = Notification.objects.filter(recipient_id=user_id)
    if channel:
        notifications = notifications.filter(channel=channel)
    if unread is not None:
        notifications = notifications.filter(read_at__isnull=unread)
    return notifications


def notification_get(*, user_id: int, notification_id: int) -> Notification | None:
    return Notification.objects.filter(id=notification_id, recipient_id=user_id).first()
