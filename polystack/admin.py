"""Admin plumbing every app shares."""
from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that only their own code writes (a consumer, a command): the admin looks."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
