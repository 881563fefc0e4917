from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "apps.realtime"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from apps.realtime.access import connect_signals

        connect_signals()
