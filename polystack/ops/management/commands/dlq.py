"""Triage dead letters from the shell, as the admin does (polystack.ops.deadletters)."""
import getpass
import json
import sys

from django.core.management.base import BaseCommand, CommandError

from polystack.ops import deadletters
from polystack.ops.models import DeadLetter


class Command(BaseCommand):
    help = (
        "List, show, redrive or discard dead letters (indexed by `runconsumer dlq-index`). Every "
        "redrive and discard is recorded with who did it.\n\n"
        "  python manage.py dlq stats [--json]\n"
        "  python manage.py dlq list --topic reminder-events-dlq --state parked\n"
        "  python manage.py dlq show 42\n"
        "  python manage.py dlq redrive 42 43            # back to each letter's original topic\n"
        "  python manage.py dlq redrive 42 --to retry    # to its first retry topic\n"
        "  python manage.py dlq redrive --all --topic reminder-events-dlq\n"
        "  python manage.py dlq discard 44 --reason 'a test message'"
    )

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="command", required=True)
        stats = commands.add_parser("stats", help="Letters parked per DLQ, and the oldest one's age.")
        stats.add_argument("--json", action="store_true", help="As JSON, for monitoring.")
        listing = commands.add_parser("list", help="Letters, newest first.")
        listing.add_argument("--topic", help="A DLQ topic (its name on the cluster).")
        listing.add_argument("--state", choices=[state for state, _ in DeadLetter.STATES])
        listing.add_argument("--limit", type=int, default=50)
        show = commands.add_parser("show", help="One letter whole: headers, payload, actions.")
        show.add_argument("id", type=int)
        redrive = commands.add_parser("redrive", help="Publish letters back, exactly once.")
        redrive.add_argument("ids", type=int, nargs="*")
        redrive.add_argument("--to", choices=["original", "retry"], default="original")
        redrive.add_argument("--all", action="store_true", help="Every parked letter (of --topic, if given).")
        redrive.add_argument("--topic")
        discard = commands.add_parser("discard", help="Mark letters discarded, with a reason.")
        discard.add_argument("ids", type=int, nargs="+")
        discard.add_argument("--reason", required=True)

    def handle(self, *args, command: str, **options):
        actor = f"shell:{getpass.getuser()}"
        if command == "stats" and options["json"]:
            rows = [{**row, "oldestAt": row["oldestAt"].isoformat() if row["oldestAt"] else None}
                    for row in deadletters.stats()]
            self.stdout.write(json.dumps(rows, indent=2))
        elif command == "stats":
            for row in deadletters.stats():
                age = f"  oldest {row['oldestAgeSeconds']:.0f} s" if row["oldestAt"] else ""
                self.stdout.write(f"{row['topic']:40} {row['parked']:6} parked{age}")
        elif command == "list":
            self._list(options)
        elif command == "show":
            self._show(options["id"])
        elif command == "redrive":
            ids = options["ids"]
            if options["all"]:
                parked = DeadLetter.objects.filter(state=DeadLetter.PARKED)
                if options["topic"]:
                    parked = parked.filter(topic=options["topic"])
                ids = list(parked.order_by("id").values_list("id", flat=True))
            if not ids:
                raise CommandError("name letters to redrive, or --all")
            self._report(deadletters.letters_redrive(ids=ids, to=options["to"], actor_name=actor), "redriven")
        elif command == "discard":
            try:
                outcome = deadletters.letters_discard(ids=options["ids"], reason=options["reason"], actor_name=actor)
            except deadletters.TriageError as exc:
                raise CommandError(str(exc)) from None
            self._report(outcome, "discarded")

    def _list(self, options) -> None:
        if options["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        letters = DeadLetter.objects.all()
        if options["topic"]:
            letters = letters.filter(topic=options["topic"])
        if options["state"]:
            letters = letters.filter(state=options["state"])
        for letter in letters[: options["limit"]]:
            self.stdout.write(f"{letter.id:6} {letter.parked_at:%Y-%m-%d %H:%M:%S} {letter.state:9} {letter} "
                              f"from {letter.original_topic or '?'} {letter.error_class}: {letter.error_message[:80]}")

    def _show(self, letter_id: int) -> None:
        letter = DeadLetter.objects.filter(id=letter_id).first()
        if letter is None:
            raise CommandError(f"no dead letter {letter_id}")
        self.stdout.write(json.dumps({
            "id": letter.id, "dlq": str(letter), "state": letter.state, "parkedAt": letter.parked_at.isoformat(),
            "original": {"topic": letter.original_topic, "partition": letter.original_partition,
                         "offset": letter.original_offset},
            "consumerGroup": letter.consumer_group, "attempts": letter.attempts,
            "error": {"class": letter.error_class, "message": letter.error_message},
            "headers": letter.headers,
            "actions": [{"at": a.at.isoformat(), "action": a.action, "by": a.actor_name, "detail": a.detail}
                        for a in letter.actions.all()],
        }, indent=2))
        self.stdout.write(deadletters.letter_payload(letter))

    def _report(self, outcome: deadletters.Outcome, verb: str) -> None:
        self.stdout.write(outcome.summary(verb))
        if outcome.skipped:
            sys.exit(1)
