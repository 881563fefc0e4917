"""Run the reminder scheduler in the foreground: due reminders from the due table to the outbox."""
import signal
import sys

from django.core.management.base import BaseCommand

from apps.reminders.scheduler import Scheduler
from polystack import db, metrics


class Command(BaseCommand):
    help = (
        "Fire reminders as they come due (ReminderDue to the outbox, which the relay publishes to "
        "reminder-events) until SIGTERM/SIGINT. Several schedulers may run: each claims its own rows.\n\n"
        "  python manage.py runscheduler\n"
        "  python manage.py runscheduler --batch-size 500"
    )
    # A role, started and restarted many times: the system checks ran in `migrate` before the
    # roles start (make run, compose) and run in `manage.py check`; here each start would repeat
    # them, half a second of CPU.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=1000, help="Reminders claimed per transaction.")

    def handle(self, *args, batch_size: int, **options):
        if batch_size < 1:
            self.stderr.write("runscheduler: --batch-size must be at least 1")
            sys.exit(2)
        try:
            db.check_reachable()
        except db.DatabaseUnreachableError as exc:
            self.stderr.write(f"runscheduler: {exc}")
            sys.exit(2)
        scheduler = Scheduler(batch_size=batch_size)
        metrics.serve("scheduler", own=(metrics.REMINDER_LATENESS,))

        def on_signal(signum, frame):
            scheduler.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        scheduler.run()
        stats = scheduler.stats
        self.stdout.write(f"scheduler stopped after firing {stats.fired} reminders ({stats.late} late)")
