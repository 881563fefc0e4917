from django.apps import AppConfig


class StreamingConfig(AppConfig):
    name = "polystack.streaming"
    label = "streaming"
