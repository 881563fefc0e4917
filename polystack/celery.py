"""The Celery application: one worker image, tasks discovered from every app; the worker's and
beat's metrics (polystack.metrics: the worker runs its tasks in threads, so its counters are
its own process's)."""
import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "polystack.settings.production")  # local: see the Makefile

app = Celery("polystack")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
def _worker_metrics(**kwargs):
    from polystack import metrics

    metrics.serve("worker")


@signals.beat_init.connect
def _beat_metrics(**kwargs):
    from polystack import metrics

    metrics.serve("beat")


@signals.task_postrun.connect
def _task_done(task=None, state=None, **kwargs):
    from polystack import metrics

    metrics.CELERY_TASKS.labels(task.name if task is not None else "unknown", (state or "unknown").lower()).inc()
