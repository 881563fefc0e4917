"""The Celery application: one worker image, tasks discovered from every app."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "polystack.settings.production")  # local: see the Makefile

app = Celery("polystack")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
