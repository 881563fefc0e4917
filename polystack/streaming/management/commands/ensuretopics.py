"""Create the Kafka topics declared in polystack/streaming/topics.py; report drift."""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from polystack.streaming import kafka
from polystack.streaming.topic_admin import ensure_topics
from polystack.streaming.topics import resolved_specs


class Command(BaseCommand):
    help = (
        "Create every declared Kafka topic that is missing and report drift (partition count, "
        "replication factor, configs) without changing it. A second run changes nothing.\n\n"
        "  python manage.py ensuretopics          # create what is missing\n"
        "  python manage.py ensuretopics --check  # change nothing; exit 1 on missing or drift"
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--check", action="store_true", help="Create nothing; exit 1 if a topic is missing or drifted."
        )

    def handle(self, *args, check: bool, **options):
        try:
            kafka.check_reachable()
        except kafka.KafkaUnreachableError as exc:
            raise CommandError(str(exc)) from None
        reports = ensure_topics(
            admin=kafka.admin_client(),
            specs=resolved_specs(),
            replication_factor=settings.KAFKA_REPLICATION_FACTOR,
            create=not check,
        )
        for report in reports:
            style = {"ok": self.style.SUCCESS, "created": self.style.SUCCESS}.get(report.status, self.style.WARNING)
            self.stdout.write(style(report.line()))
        troubled = [r for r in reports if r.status in {"drift", "missing"}]
        if troubled:
            self.stderr.write(
                f"{len(troubled)} topic(s) differ from the registry; nothing was changed. Alter them "
                "by hand (kafka-topics / kafka-configs) or update polystack/streaming/topics.py."
            )
            if check:
                raise CommandError("topics differ from the registry")
