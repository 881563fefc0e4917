"""Run one demo of a pattern against the running system (apps.web.demos)."""
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.web import demos
from apps.web.demos.base import DemoError, Options, Show
from polystack.streaming import kafka
from polystack.streaming.registry import get_consumers


class Command(BaseCommand):
    help = (
        "Show one pattern at work on the running system (`make run`), step by step, in plain "
        "words, and clean up after.\n\n"
        "  python manage.py demo --list\n"
        "  python manage.py demo replay\n"
        "  python manage.py demo fanout --url http://127.0.0.1:8000/\n\n"
        "--fast leaves out the pauses for reading and shortens the faults (the tests use it). "
        "Exit 1 when the demo could not run to its end, saying why."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", nargs="?", choices=list(demos.DEMOS))
        parser.add_argument("--list", action="store_true", help="List the demos and what each shows.")
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="The running web role.")
        parser.add_argument("--fast", action="store_true", help="No pauses for reading; short faults.")
        parser.add_argument("--group", action="append", default=[], metavar="CONSUMER=GROUP",
                            help="A role's consumer group when it is not the registered one "
                                 "(as started with runconsumer --group-id); may be repeated.")

    def handle(self, *args, name: str | None, list: bool, url: str, fast: bool, group: list[str], **options):
        if list or not name:
            for demo_name in demos.DEMOS:
                self.stdout.write(f"{demo_name:14} {demos.get(demo_name).TITLE}")
            if not list:
                self.stdout.write("\nRun one: python manage.py demo <name>")
            return
        if not settings.DEBUG:
            raise CommandError("the demos are for local use only (DEBUG is off): they stop roles and make users")
        try:
            kafka.check_reachable()
        except kafka.KafkaUnreachableError as exc:
            raise CommandError(str(exc)) from None
        groups = dict(pair.split("=", 1) for pair in group if "=" in pair)
        if len(groups) != len(group) or not set(groups) <= set(get_consumers()):
            raise CommandError(f"--group takes CONSUMER=GROUP, a consumer among {', '.join(get_consumers())}")
        demo = demos.get(name)
        run_options = Options(url=url, pace_s=0.0 if fast else 1.5, hold_s=2.0 if fast else 12.0, groups=groups)
        show = Show(self.stdout, run_options)
        show.line(f"Demo {name}: {demo.TITLE}.")
        show.line(f"Watch {demo.WATCH}.")
        # SIGTERM ends the demo like Ctrl-C: its clean-up runs (a stopped role is started again).
        previous = signal.signal(signal.SIGTERM, _stop)
        try:
            demo.run(show, run_options)
        except DemoError as exc:
            raise CommandError(f"the demo stopped: {exc}") from None
        finally:
            signal.signal(signal.SIGTERM, previous)
        show.line(f"\nDemo {name} done.")


def _stop(signum, frame):
    raise KeyboardInterrupt
