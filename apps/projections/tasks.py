"""Celery tasks of the projection: the admin's replay and snapshot jobs."""
import logging

from celery import shared_task
from django.utils import timezone

from apps.projections import services
from apps.projections.models import ProjectionJob
from apps.projections.replay import replay

logger = logging.getLogger("apps.projections.tasks")


@shared_task(acks_late=True)
def run_projection_job(job_id: int) -> None:
    """Run one ProjectionJob, recording its progress for the admin to show."""
    claimed = ProjectionJob.objects.filter(id=job_id, status=ProjectionJob.Status.QUEUED).update(
        status=ProjectionJob.Status.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return  # already taken (a redelivered task), or gone
    job = ProjectionJob.objects.get(id=job_id)

    def report(progress) -> None:
        ProjectionJob.objects.filter(id=job_id).update(progress=progress.line()[:2000])

    try:
        if job.kind == ProjectionJob.Kind.SNAPSHOT:
            snapshot_id = services.take_snapshot(reason="on demand")
            summary = f"snapshot {snapshot_id} taken"
        else:
            result = replay(from_snapshot=job.kind == ProjectionJob.Kind.REPLAY_FROM_SNAPSHOT, progress=report)
            summary = "; ".join([f"replayed {result.applied:,} events in {result.elapsed_s:.1f} s",
                                 *result.warnings()])
    except Exception as exc:
        logger.exception("projection job %s failed", job_id)
        ProjectionJob.objects.filter(id=job_id).update(
            status=ProjectionJob.Status.FAILED, finished_at=timezone.now(), progress=f"{type(exc).__name__}: {exc}"[:2000]
        )
        raise
    ProjectionJob.objects.filter(id=job_id).update(
        status=ProjectionJob.Status.SUCCEEDED, finished_at=timezone.now(), progress=summary[:2000]
    )
