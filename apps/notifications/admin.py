"""Admin: notification history (with delivery status and errors, and a re-send action for
failed ones) and preferences."""
from django.contrib import admin, messages

from apps.notifications.models import Notification, NotificationPreference
from apps.notifications.tasks import deliver


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["id", "recipient", "channel", "category", "subject", "status", "attempts", "created_at", "read_at"]
    list_filter = ["status", "channel", "category"]
    search_fields = ["recipient__username", "event_id", "todo_id", "subject"]
    readonly_fields = [f.name for f in Notification._meta.fields]
    actions = ["send_again"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Send the selected failed notifications again")
    def send_again(self, request, queryset):
        ids = list(queryset.filter(status=Notification.Status.FAILED).values_list("id", flat=True))
        Notification.objects.filter(id__in=ids).update(status=Notification.Status.PENDING, attempts=0)
        for notification_id in ids:
            deliver.delay(notification_id)
        self.message_user(request, f"{len(ids)} notification(s) queued again.", messages.SUCCESS)


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "category", "channel", "enabled"]
    list_filter = ["category", "channel", "enabled"]
