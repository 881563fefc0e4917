"""Admin: notification history (with delivery status and errors, and a send-now action for
unsent ones) and preferences."""
from django.contrib import admin, messages

from apps.notifications import delivery
from apps.notifications.models import Notification, NotificationPreference

SEND_NOW_AT_MOST = 50  # sent while the admin waits: one SMTP timeout each at worst


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["id", "recipient", "channel", "category", "subject", "status", "attempts", "created_at", "read_at"]
    list_filter = ["status", "channel", "category"]
    search_fields = ["recipient__username", "event_id", "todo_id", "subject"]
    readonly_fields = [f.name for f in Notification._meta.fields]
    actions = ["send_again"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Send the selected unsent notifications now")
    def send_again(self, request, queryset):
        ids = list(queryset.filter(status__in=delivery.UNSENT).values_list("id", flat=True)[:SEND_NOW_AT_MOST + 1])
        if len(ids) > SEND_NOW_AT_MOST:
            self.message_user(request, f"Select at most {SEND_NOW_AT_MOST}: they are sent while you wait.",
                              messages.ERROR)
            return
        try:
            sent = delivery.deliver_all(ids)
        except delivery.DeliveryFailedError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, f"{sent} notification(s) sent.", messages.SUCCESS)


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "category", "channel", "enabled"]
    list_filter = ["category", "channel", "enabled"]
