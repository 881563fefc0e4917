"""Run the outbox relay in the foreground: todo events from PostgreSQL to Kafka."""
import signal
import sys

from django.core.management.base import BaseCommand

from apps.todos.relay import Relay, RelayError
from polystack import db, metrics
from polystack.streaming import kafka


class Command(BaseCommand):
    help = (
        "Publish the transactional outbox to Kafka until SIGTERM/SIGINT. One relay is active at "
        "a time; start a second one as a standby.\n\n"
        "  python manage.py runrelay\n"
        "  python manage.py runrelay --batch-size 2000"
    )
    # A role, started and restarted many times: the system checks ran in `migrate` before the
    # roles start (make run, compose) and run in `manage.py check`; here each start would repeat
    # them, half a second of CPU.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=2000, help="Rows read and published per round trip.")

    def handle(self, *args, batch_size: int, **options):
        if batch_size < 1:
            self.stderr.write("runrelay: --batch-size must be at least 1")
            sys.exit(2)
        try:
            db.check_reachable()
        except db.DatabaseUnreachableError as exc:
            self.stderr.write(f"runrelay: {exc}")
            sys.exit(2)
        try:
            kafka.check_reachable()
        except kafka.KafkaUnreachableError as exc:
            # Not fatal: commands keep succeeding and the events wait in the outbox.
            self.stderr.write(f"runrelay: {exc}; events wait in the outbox until it answers")

        relay = Relay(batch_size=batch_size)
        metrics.serve("relay", own=(metrics.RELAY_PUBLISHED, metrics.RELAY_PASS_SECONDS))

        def on_signal(signum, frame):
            relay.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        try:
            relay.run()
        except RelayError as exc:
            self.stderr.write(f"runrelay: {exc}")
            sys.exit(2)
        self.stdout.write(f"relay stopped after publishing {relay.stats.published} events")
