"""The due table in the admin, to look at: it follows the events, so a row made or changed here
would fire for nobody's schedule."""
from django.contrib import admin

from apps.reminders.models import Reminder, TodoSchedule
from polystack.admin import ReadOnlyAdmin


@admin.register(Reminder)
class ReminderAdmin(ReadOnlyAdmin):
    list_display = ("todo_id", "reminder_type", "due_date", "remind_at", "state", "fired_at", "late")
    list_filter = ("state", "late")
    search_fields = ("todo_id",)
    ordering = ("remind_at",)


@admin.register(TodoSchedule)
class TodoScheduleAdmin(ReadOnlyAdmin):
    list_display = ("todo_id", "owner_id", "version", "due_date", "scheduled_version", "closed")
    search_fields = ("todo_id",)
