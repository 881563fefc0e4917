"""Run one registered Kafka consumer in the foreground: the process of one role."""
import os
import re
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from polystack import db, metrics
from polystack.streaming import kafka
from polystack.streaming.registry import UnknownConsumerError, get_consumer, get_consumers
from polystack.streaming.runner import ConsumerStoppedError, Runner, RunnerOptions
from polystack.streaming.transactional import TransactionalRunner
from polystack.streaming.topics import resolve


class Command(BaseCommand):
    help = (
        "Run the Kafka consumer an app registered under NAME until SIGTERM/SIGINT.\n\n"
        "  python manage.py runconsumer --list\n"
        "  python manage.py runconsumer projections\n"
        "  python manage.py runconsumer projections --max-batch-size 1000 --max-batch-time-ms 500\n"
        "  python manage.py runconsumer notifications --group-id notif-debug --auto-offset-reset latest\n"
        "  python manage.py runconsumer realtime --healthcheck-file /tmp/realtime.alive\n"
        "  python manage.py runconsumer analytics --state-dir /var/lib/polystack/state\n\n"
        "Exit status: 0 after a clean stop, 1 after a loud stop (DLQ limit, retries exhausted), "
        "2 when Kafka, PostgreSQL or a topic is missing."
    )
    # A role, started and restarted many times: the system checks ran in `migrate` before the
    # roles start (make run, compose) and run in `manage.py check`; here each start would repeat
    # them, half a second of CPU.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("name", nargs="?", help="The registered consumer to run (see --list).")
        parser.add_argument("--list", action="store_true", help="List the registered consumers and exit.")
        parser.add_argument("--max-batch-size", type=int, help="Messages handled per commit (default: the consumer's).")
        parser.add_argument("--max-batch-time-ms", type=int, help="How long a batch may wait to fill after its first message; 0 takes what is ready (default: the consumer's).")
        parser.add_argument("--join-timeout", type=float, default=10.0, help="Seconds to finish the batch in hand on shutdown.")
        parser.add_argument("--group-id", help="Consumer group id instead of the registered one.")
        parser.add_argument(
            "--auto-offset-reset", choices=["earliest", "latest", "error"], default="earliest",
            help="Where a group without committed offsets starts.",
        )
        parser.add_argument("--healthcheck-file", type=Path, help="File touched on every poll while healthy.")
        parser.add_argument("--instance", default=os.environ.get("POLYSTACK_INSTANCE", "0"),
                            help="A transactional consumer's process slot: its transactional.id is <group>.<instance>; "
                                 "two processes of one group need two slots (default: $POLYSTACK_INSTANCE or 0).")
        parser.add_argument("--state-dir", type=Path,
                            help="A transactional consumer's state stores go here (default: STREAM_STATE_DIR).")

    def handle(self, *args, name: str | None, list: bool, **options):
        if list:
            return self._list()
        if not name:
            raise CommandError(f"name a consumer; known consumers: {', '.join(get_consumers()) or '(none)'}")
        for option in ("max_batch_size", "max_batch_time_ms"):
            if options[option] is not None and options[option] < (1 if option == "max_batch_size" else 0):
                raise CommandError(f"--{option.replace('_', '-')} is out of range")
        try:
            definition = get_consumer(name)
        except UnknownConsumerError as exc:
            raise CommandError(str(exc)) from None
        needed = definition.topics + definition.retry_topics + definition.dlq_topics + definition.outputs
        self._check_dependencies(tuple(resolve(topic) for topic in needed))
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", options["instance"]):
            raise CommandError("--instance takes letters, digits, '.', '_' and '-' (at most 64)")
        if options["state_dir"] is not None and definition.store is None:
            raise CommandError(f"--state-dir is for a consumer with a state store; {name} has none")

        kind = TransactionalRunner if definition.commit_mode == "transactional" else Runner
        extra = {"state_dir": options["state_dir"], "instance": options["instance"]} if kind is TransactionalRunner else {}
        runner = kind(
            definition,
            RunnerOptions(
                max_batch_size=options["max_batch_size"],
                max_batch_time_ms=options["max_batch_time_ms"],
                join_timeout_s=options["join_timeout"],
                group_id=options["group_id"],
                auto_offset_reset=options["auto_offset_reset"],
                healthcheck_file=options["healthcheck_file"],
            ),
            **extra,
        )
        runner.install_signal_handlers()
        metrics.serve(f"consumer-{name}")
        try:
            runner.run()
        except ConsumerStoppedError as exc:
            self.stderr.write(f"runconsumer {name}: stopped: {exc}")
            self._exit(1, runner)
        self._exit(0, runner)

    def _exit(self, code: int, runner: Runner) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        if runner.close_hung:
            os._exit(code)  # librdkafka would block interpreter shutdown too
        sys.exit(code)

    def _list(self) -> None:
        consumers = get_consumers()
        if not consumers:
            self.stdout.write("no consumers registered")
        for definition in consumers.values():
            self.stdout.write(
                f"{definition.name:16} topics={','.join(definition.topics)} group={definition.group_id} "
                f"dlq={','.join(definition.dlq_topics) or '-'} commit={definition.commit_mode}"
                + (f"  {definition.description}" if definition.description else "")
            )

    def _check_dependencies(self, topics: tuple[str, ...]) -> None:
        """Fail fast with one clear line, not a traceback loop, when something is missing."""
        try:
            db.check_reachable()
        except db.DatabaseUnreachableError as exc:
            self._fail(str(exc))
        try:
            existing = kafka.check_reachable().topics
        except kafka.KafkaUnreachableError as exc:
            self._fail(str(exc))
        missing = [topic for topic in topics if topic not in existing]
        if missing:
            self._fail(f"Kafka topic(s) missing: {', '.join(missing)}; run `python manage.py ensuretopics`")

    def _fail(self, message: str) -> None:
        self.stderr.write(f"runconsumer: {message}")
        sys.exit(2)
