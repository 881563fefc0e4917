from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Operating the project: the list of roles, the local demo login."""

    name = "polystack.ops"
    label = "ops"
