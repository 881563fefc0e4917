"""Rebuild a projection from its topic, aside, and swap it in."""
from django.core.management.base import BaseCommand, CommandError

from apps.projections.replay import ReplayError, replay
from polystack.streaming import kafka

PROJECTIONS = ("projections",)


class Command(BaseCommand):
    help = (
        "Rebuild every read table of the todo projection from todo-events, beside the live "
        "tables, and swap it in when complete. Readers keep the old tables until the swap; live "
        "events arriving meanwhile are not lost.\n\n"
        "  python manage.py replay projections\n"
        "  python manage.py replay projections --from-snapshot\n\n"
        "One replay runs at a time. It refuses to swap in a rebuild that lacks real events "
        "(rejected, or parked for a version that never came) and says which and why."
    )

    def add_arguments(self, parser):
        parser.add_argument("projection", choices=PROJECTIONS)
        parser.add_argument("--from-snapshot", action="store_true", help="Start from the latest snapshot and its offsets.")
        parser.add_argument("--batch-size", type=int, default=5000)

    def handle(self, *args, projection: str, from_snapshot: bool, batch_size: int, **options):
        try:
            kafka.check_reachable()
        except kafka.KafkaUnreachableError as exc:
            raise CommandError(str(exc)) from None
        try:
            result = replay(
                from_snapshot=from_snapshot,
                batch_size=batch_size,
                progress=lambda p: self.stdout.write(p.line()),
            )
        except ReplayError as exc:
            raise CommandError(str(exc)) from None
        origin = f"snapshot {result.snapshot_id}" if result.snapshot_id else "the beginning"
        for line in result.warnings():
            self.stdout.write(self.style.WARNING(line))
        self.stdout.write(self.style.SUCCESS(
            f"replayed {result.applied:,} events from {origin} in {result.elapsed_s:.1f} s"
            + (f"; {result.rejected:,} messages skipped" if result.rejected else "")
        ))
