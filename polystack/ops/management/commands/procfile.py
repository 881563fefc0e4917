"""Print a Procfile with every role, for honcho (make run) or any Procfile runner."""
import sys

from django.core.management.base import BaseCommand

from django.conf import settings

from polystack.ops.roles import metrics_ports, roles

MAIL_SINK = "aiosmtpd -n -l {host}:{port} -c aiosmtpd.handlers.Debugging"
PROMETHEUS = ("prometheus --config.file={config} --storage.tsdb.path={state_dir}/prometheus "
              "--storage.tsdb.retention.time=2d --web.listen-address=127.0.0.1:9090")


class Command(BaseCommand):
    help = (
        "Print a Procfile that runs every role: web (daphne), Celery worker and beat, the relay, the "
        "scheduler, one process per registered consumer and the monitor, each with METRICS_PORT set "
        "(9400 and on; manage.py prometheusconfig scrapes the same ports). Each runs under polystack.ops.supervise, which restarts it "
        "with backoff when it exits while the others keep serving (--no-supervise: bare commands).\n\n"
        "  python manage.py procfile > Procfile && honcho start -f Procfile"
    )

    def add_arguments(self, parser):
        parser.add_argument("--python", default=sys.executable, help="Python interpreter of the roles.")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--state-dir", default=".stack", help="Folder for Celery beat's schedule file.")
        parser.add_argument("--mail-sink", action="store_true",
                            help="Add a `mail` role: an SMTP server on EMAIL_HOST:EMAIL_PORT that prints what it gets "
                                 "(local development; needs aiosmtpd from requirements-dev.txt).")
        parser.add_argument("--no-supervise", action="store_true", help="Bare commands: a role that exits stays down.")
        parser.add_argument("--prometheus", metavar="CONFIG",
                            help="Add a `prometheus` role (Debian's prometheus on 127.0.0.1:9090) with this "
                                 "configuration (manage.py prometheusconfig writes it).")

    def handle(self, *args, python: str, host: str, port: int, state_dir: str, mail_sink: bool, no_supervise: bool,
               prometheus: str | None, **options):
        ours = roles(python=python, host=host, port=port, state_dir=state_dir)
        ports = metrics_ports(ours)
        lines = {}
        if mail_sink:
            lines["mail"] = f"{python} -m {MAIL_SINK.format(host=settings.EMAIL_HOST, port=settings.EMAIL_PORT)}"
        lines.update(ours)
        if prometheus:
            lines["prometheus"] = PROMETHEUS.format(config=prometheus, state_dir=state_dir)
        for name, command in lines.items():
            if not no_supervise:
                command = f"{python} -m polystack.ops.supervise --name {name} -- {command}"
            if name in ports:
                command = f"METRICS_PORT={ports[name]} {command}"
            self.stdout.write(f"{name}: {command}")
