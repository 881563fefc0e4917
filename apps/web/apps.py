from django.apps import AppConfig


class WebConfig(AppConfig):
    """The top layer: the web page, the todo resource of the REST API (commands and reads
    together), the root URLs and the ASGI/WSGI entry points. It may import every app; no app
    imports it (.importlinter)."""

    name = "apps.web"
    default_auto_field = "django.db.models.BigAutoField"
