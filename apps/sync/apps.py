from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "apps.sync"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import m2m_changed

        from apps.sync import access
        from apps.todos.models import Team

        m2m_changed.connect(access.on_membership_changed, sender=Team.members.through, dispatch_uid="sync-membership")
