from django.contrib import admin

from apps.reminders.models import Reminder, TodoSchedule


@admin.register(Reminder)
class ReminderAdmin(admin.ModelAdmin):
    list_display = ("todo_id", "reminder_type", "due_date", "remind_at", "state", "fired_at", "late")
    list_filter = ("state", "late")
    search_fields = ("todo_id",)
    ordering = ("remind_at",)

    def has_add_permission(self, request):
        return False  # the due table follows the events: a row made here would fire for nobody's schedule

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(TodoSchedule)
class TodoScheduleAdmin(admin.ModelAdmin):
    list_display = ("todo_id", "owner_id", "version", "due_date", "scheduled_version", "closed")
    search_fields = ("todo_id",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
