"""Print a Procfile with every role, for honcho (make run) or any Procfile runner."""
import sys

from django.core.management.base import BaseCommand

from polystack.ops.roles import roles


class Command(BaseCommand):
    help = (
        "Print a Procfile that runs every role: web (daphne), Celery worker and beat, and one "
        "process per registered consumer.\n\n"
        "  python manage.py procfile > Procfile && honcho start -f Procfile"
    )

    def add_arguments(self, parser):
        parser.add_argument("--python", default=sys.executable, help="Python interpreter of the roles.")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--state-dir", default=".stack", help="Folder for Celery beat's schedule file.")

    def handle(self, *args, python: str, host: str, port: int, state_dir: str, **options):
        for name, command in roles(python=python, host=host, port=port, state_dir=state_dir).items():
            self.stdout.write(f"{name}: {command}")
