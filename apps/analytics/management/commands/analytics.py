"""Analytics from the shell: check the stream against a batch recomputation, keep partitions."""
import time
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from apps.analytics import partitions
from apps.analytics.verify import verify
from polystack.streaming import kafka

SHOWN_DIFFERENCES = 50


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"not an ISO 8601 date and time: {text!r}") from None
    if moment.tzinfo is None:
        raise CommandError(f"say which time zone {text!r} is in (e.g. {text}Z)")
    return moment


class Command(BaseCommand):
    help = (
        "verify: recompute every windowed metric in batch from todo-events and compare it with what the "
        "stream wrote; exit status 1 if they differ. maintain: create the coming weeks' partitions and drop "
        "those past ANALYTICS_RETENTION_DAYS (Celery beat does it hourly).\n\n"
        "  python manage.py analytics verify\n"
        "  python manage.py analytics verify --from 2026-11-01T00:00Z --to 2026-11-08T00:00Z\n"
        "  python manage.py analytics maintain"
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=("verify", "maintain"))
        parser.add_argument("--from", dest="start", type=_moment, help="Windows starting at or after (ISO 8601).")
        parser.add_argument("--to", dest="end", type=_moment, help="Windows starting before (ISO 8601).")

    def handle(self, *args, action: str, start: datetime | None, end: datetime | None, **options):
        if action == "maintain":
            dropped = partitions.maintain()
            self.stdout.write(f"partitions ready; dropped {', '.join(dropped) if dropped else 'none'}")
            return
        if start and end and start >= end:
            raise CommandError("--from must be before --to")
        try:
            kafka.check_reachable()
        except kafka.KafkaUnreachableError as exc:
            raise CommandError(str(exc)) from None
        began, shown = time.monotonic(), [0.0]

        def progress(read: int) -> None:
            if time.monotonic() - shown[0] >= 2:
                shown[0] = time.monotonic()
                self.stdout.write(f"read {read:,} events")

        report = verify(start=start, end=end, progress=progress)
        self.stdout.write(
            f"{report.events:,} events read in {time.monotonic() - began:.1f} s ({report.skipped:,} the stream "
            f"dead-letters, {report.late_drops:,} late drops recorded); {len(report.expected):,} window rows "
            f"expected, {len(report.actual):,} stored")
        differences = report.differences
        for (window, metric, owner, window_start, team, dim), expected, actual in differences[:SHOWN_DIFFERENCES]:
            self.stdout.write(
                f"  {window} {window_start.isoformat()} user {owner} team {team or '-'} {metric}[{dim}]: "
                f"batch {expected if expected is not None else 'none'}, stream {actual if actual is not None else 'none'}")
        if differences:
            more = len(differences) - SHOWN_DIFFERENCES
            raise CommandError(f"{len(differences):,} differences" + (f" ({more:,} not shown)" if more > 0 else ""))
        self.stdout.write(self.style.SUCCESS("the stream and the batch agree"))
