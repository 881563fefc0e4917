"""PolyStack: an event-driven todo service on Apache Kafka, as one Django project."""
from polystack.celery import app as celery_app

__all__ = ("celery_app",)
