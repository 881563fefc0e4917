"""Run the monitor role in the foreground: the probes of every app (polystack.ops.monitor),
measured at each scrape of its metrics endpoint."""
import os
import signal
import sys
import threading

from django.core.management.base import BaseCommand, CommandError
from prometheus_client import REGISTRY, CollectorRegistry, disable_created_metrics, generate_latest, start_http_server

from polystack.ops import monitor
from polystack.streaming import kafka
from polystack.streaming.registry import get_consumers


class Command(BaseCommand):
    help = (
        "Serve the monitor's metrics (consumer lag per group and partition, DLQs, outbox, projection) "
        "until SIGTERM/SIGINT; each scrape measures them anew.\n\n"
        "  METRICS_PORT=9450 python manage.py runmonitor\n"
        "  python manage.py runmonitor --port 9450 --group-id projections=projection-debug\n"
        "  python manage.py runmonitor --once      # print one scrape and exit\n\n"
        "Exit status: 0 after a stop, 2 when the port is missing or taken."
    )
    # A role, started and restarted many times: the system checks ran in `migrate` before the
    # roles start (make run, compose) and run in `manage.py check`; here each start would repeat
    # them, half a second of CPU.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("METRICS_PORT") or 0) or None,
                            help="Port of the metrics endpoint (default: $METRICS_PORT).")
        parser.add_argument("--host", default=os.environ.get("METRICS_HOST", "127.0.0.1"))
        parser.add_argument("--group-id", action="append", default=[], metavar="CONSUMER=GROUP",
                            help="Watch a consumer's group under another id (as runconsumer --group-id); repeatable.")
        parser.add_argument("--once", action="store_true", help="Print one scrape in Prometheus' text format and exit.")

    def handle(self, *args, port: int | None, host: str, group_id: list[str], once: bool, **options):
        groups = {}
        for pair in group_id:
            name, _, group = pair.partition("=")
            if name not in get_consumers() or not group:
                raise CommandError(f"--group-id takes CONSUMER=GROUP with a consumer of: {', '.join(get_consumers())}")
            groups[name] = group
        collector = monitor.ProbeCollector(monitor.Context(admin=kafka.admin_client(), group_ids=groups),
                                           monitor.discover())
        disable_created_metrics()
        if once:
            registry = CollectorRegistry()
            registry.register(collector)
            self.stdout.write(generate_latest(registry).decode())
            return
        if not port:
            self.stderr.write("runmonitor: give --port or METRICS_PORT: the monitor is only its metrics endpoint")
            sys.exit(2)
        REGISTRY.register(collector)
        try:
            start_http_server(port, addr=host)
        except OSError as exc:
            self.stderr.write(f"runmonitor: cannot listen on {host}:{port}: {exc}")
            sys.exit(2)
        self.stdout.write(f"monitor: metrics on http://{host}:{port}/metrics (probes: {', '.join(monitor.PROBES)})")
        self.stdout.flush()
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda signum, frame: stopped.set())
        signal.signal(signal.SIGINT, lambda signum, frame: stopped.set())
        stopped.wait()
