"""Take a snapshot of a projection now."""
from django.core.management.base import BaseCommand

from apps.projections import services
from apps.projections.models import Snapshot


class Command(BaseCommand):
    help = (
        "Copy the todo projection and the topic offsets it corresponds to, consistently. "
        "`replay projections --from-snapshot` starts from the latest one.\n\n"
        "  python manage.py snapshot projections"
    )

    def add_arguments(self, parser):
        parser.add_argument("projection", choices=("projections",))

    def handle(self, *args, projection: str, **options):
        snapshot = Snapshot.objects.get(pk=services.take_snapshot())
        self.stdout.write(self.style.SUCCESS(
            f"snapshot {snapshot.pk}: {snapshot.todo_count} todos, {snapshot.event_count} events, offsets {snapshot.offsets}"
        ))
