"""The chaos suite: `python -m chaos` (make chaos). Loopback only, bounded in time, stops by itself.

    python -m chaos                 three brokers, every fault, a few minutes of load
    python -m chaos --short         one broker, one fault of each kind, a few hundred commands (make test)
    python -m chaos --brokers 1     the full run on one broker (its kill is then a whole outage)

It starts a stack of its own (.stack/chaos/: Kafka, PostgreSQL, Redis on other ports), every
role under its supervisor, and client processes (chaos.load) issuing commands for several users
through the REST API with a live socket each. Meanwhile it injects faults one after another: a
broker SIGKILLed and restarted, each role SIGKILLed (its supervisor restarts it), Redis and
PostgreSQL crashed and restarted under open sockets, the relay frozen (SIGSTOP) past Kafka's
request timeout. Then the load stops, the system settles, and the checker (chaos.checker) proves
what every phase promises. It prints two tables, the faults and the invariants, and exits 0 only
when every invariant held (1 otherwise, with the evidence; 2 when the run itself failed).
"""
import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from confluent_kafka import KafkaException

from chaos.stack import STACK_DIR, Roles, Stack, environment

CONSUMER_ROLES = ("consumer-projections", "consumer-realtime", "consumer-notifications", "consumer-reminders",
                  "consumer-analytics", "consumer-sync")
# Past the relay producer's request.timeout.ms (librdkafka's 30 s): its requests in flight time
# out, and are sent again, when it wakes.
RELAY_PAUSE_S = 35.0
SMTP_ACK_WINDOW_S = 2.0  # a mail accepted this long before the notifier's SIGKILL may come again


@dataclass
class Profile:
    brokers: int
    hold_s: float  # how long a killed server or role stays down
    calm_s: float  # load alone between two faults
    rate: float  # commands/s per user
    clients: int
    users_per_client: int
    roles: tuple[str, ...]  # the roles SIGKILLed in turn
    without: tuple[str, ...] = ()  # roles not started: none of the invariants reads their work


# The short run shares two cores with the rest of `make test`: it leaves out Celery and the DLQ
# indexer (no invariant depends on them), and kills one role of each kind of loop: the relay (an
# at-least-once producer), the notifier (a consumer with an outside effect, SMTP) and the sync
# coordinator (a transactional one). Every restart is a Django start on a busy machine: killing
# all eight roles cost the suite about a minute more, and showed nothing these three do not.
SHORT = Profile(brokers=1, hold_s=1.0, calm_s=1.0, rate=0.75, clients=2, users_per_client=2,
                roles=("relay", "consumer-notifications", "consumer-sync"),
                without=("worker", "beat", "consumer-dlq-index"))
FULL = Profile(brokers=3, hold_s=5.0, calm_s=8.0, rate=2.0, clients=3, users_per_client=2,
               roles=("relay", *CONSUMER_ROLES, "scheduler", "web", "consumer-sync-sink", "consumer-analytics-sink",
                      "consumer-dlq-index", "worker", "beat"))


def say(text: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {text}", flush=True)


def wait_until(condition, *, timeout: float, what: str, every: float = 0.25) -> float:
    """Poll `condition` until it holds; the seconds it took. RuntimeError after `timeout`."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)  # the poll interval
    return time.monotonic() - began


class Run:
    """One chaos run. Django and the apps are imported inside its steps, once __init__ has put
    the run's environment (its stack's URLs, its topic prefix) where the settings read it."""

    def __init__(self, profile: Profile):
        self.profile = profile
        self.run_id = uuid.uuid4().hex[:6]
        self.env = environment(brokers=profile.brokers, prefix=f"chaos-{self.run_id}.")
        os.environ.update(self.env)
        self.folder = STACK_DIR / "runs" / self.run_id
        self.stack = Stack(self.env, brokers=profile.brokers)
        self.began = time.monotonic()
        self.faults: list[tuple[str, str, str]] = []  # fault, at, back to normal after (and a note)
        self.notifier_kills: list[float] = []
        self.clients: list[subprocess.Popen] = []

    # --- set-up ------------------------------------------------------------------------------
    def set_up(self) -> None:
        say(f"run {self.run_id}: starting the chaos stack ({self.profile.brokers} broker(s)) under {STACK_DIR}")
        self.stack.up()
        self._fresh_database()
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        self._fresh_topics()
        call_command("ensuretopics", stdout=io.StringIO())
        import redis

        redis.Redis.from_url(self.env["REDIS_URL"]).flushdb()
        shutil.rmtree(self.folder.parent, ignore_errors=True)  # earlier runs' client files
        self.folder.mkdir(parents=True)
        self.users = self._users()
        from bench.common import free_port
        from tests.helpers import MailInbox

        self.smtp = MailInbox(free_port())  # a real SMTP server on loopback, keeping what it gets
        self.smtp.start()
        self.web_port = free_port()
        self.roles = Roles(self.env, web_port=self.web_port, hold_s=self.profile.hold_s, smtp_port=self.smtp.port,
                           without=self.profile.without)
        self.roles.start()
        say(f"{len(self.roles.commands)} roles starting (logs in {self.roles.logs})")
        wait_until(self._web_up, timeout=180, what="the web role")
        wait_until(self._groups_joined, timeout=180, what="every consumer in its group", every=1.0)

    def _fresh_database(self) -> None:
        import psycopg
        from psycopg import sql
        from urllib.parse import urlsplit, urlunsplit

        url = urlsplit(self.env["DATABASE_URL"])
        with psycopg.connect(urlunsplit(url._replace(path="/postgres")), autocommit=True) as conn:
            name = sql.Identifier(url.path.lstrip("/"))
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))

    def _fresh_topics(self) -> None:
        """Drop what earlier runs left on the chaos cluster (each run has its own prefix)."""
        from polystack.streaming import kafka

        admin = kafka.admin_client()
        old = [t for t in admin.list_topics(timeout=30).topics if t.startswith("chaos-")]
        for future in (admin.delete_topics(old).values() if old else ()):
            future.result(60)

    def _users(self) -> list[list[dict]]:
        """users_per_client users per client; the first of each client in one team."""
        from django.contrib.auth import get_user_model
        from rest_framework.authtoken.models import Token

        from apps.todos.models import Team

        User = get_user_model()
        made = [[User.objects.create_user(f"chaos{c}-{u}", email=f"chaos{c}-{u}@example.test", password=None)
                 for u in range(self.profile.users_per_client)] for c in range(self.profile.clients)]
        team = Team.objects.create(name="chaos", owner=made[0][0])
        team.members.add(*(users[0] for users in made))
        return [[{"id": user.pk, "token": Token.objects.create(user=user).key, "team": str(team.pk) if u == 0 else None}
                 for u, user in enumerate(users)] for users in made]

    def mails(self) -> list[tuple[str, str, float]]:
        """(event id, recipient, when) of every mail the SMTP server received."""
        return [(email.get("X-PolyStack-Event", ""), recipient, at)
                for (recipients, email), at in zip(self.smtp.messages, self.smtp.received_at) for recipient in recipients]

    def _web_up(self) -> bool:
        import requests

        try:
            return requests.get(f"http://127.0.0.1:{self.web_port}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def _group_views(self):
        """The groups of the consumers this run started: state, members, lag."""
        from polystack.ops import kafka_view
        from polystack.ops.monitor import Context
        from polystack.streaming import kafka
        from polystack.streaming.registry import get_consumers

        admin = kafka.admin_client()
        running = {get_consumers()[name.removeprefix("consumer-")].group_id
                   for name in self.roles.commands if name.startswith("consumer-")}
        wanted = {group: topics for group, topics in Context(admin=admin).consumer_groups().items() if group in running}
        return kafka_view.groups(admin, wanted)

    def _groups_joined(self, only: str | None = None) -> bool:
        from polystack.streaming.registry import get_consumers

        try:
            views = self._group_views()
        except (KafkaException, TimeoutError):  # Kafka restarting: not joined yet
            return False
        if only:
            views = [v for v in views if v.group_id == get_consumers()[only].group_id]
        return bool(views) and all(v.state == "Stable" and v.members for v in views)

    # --- load --------------------------------------------------------------------------------
    def start_load(self) -> None:
        for n, users in enumerate(self.users):
            config = self.folder / f"client-{n}.json"
            config.write_text(json.dumps({"base": f"http://127.0.0.1:{self.web_port}", "dir": str(self.folder),
                                          "client": n, "seed": n + 1, "rate": self.profile.rate, "users": users}))
            log = open(self.folder / f"client-{n}.log", "w")
            self.clients.append(subprocess.Popen([sys.executable, "-m", "chaos.load", str(config)],
                                                 cwd=STACK_DIR.parent.parent, stdout=log, stderr=subprocess.STDOUT))
        say(f"{len(self.clients)} client processes, {sum(map(len, self.users))} users, "
            f"{self.profile.rate:g} commands/s each, one live socket each")

    def commands_so_far(self) -> int:
        return sum(len(p.read_text().splitlines()) for p in self.folder.glob("commands-*.jsonl"))

    # --- faults ------------------------------------------------------------------------------
    def fault(self, name: str, inject, recover, back, *, hold: bool = True) -> None:
        """Inject, keep it HOLD seconds (unless the fault holds itself: a supervisor's backoff),
        recover, and wait for `back()`; one row of the faults' table."""
        at = time.monotonic() - self.began
        say(f"fault: {name}")
        note = inject() or ""
        if hold:
            time.sleep(self.profile.hold_s)  # the fault's duration: the system runs without it
        recover()
        wait_until(back, timeout=240, what=f"recovery from: {name}", every=0.2)
        normal = time.monotonic() - self.began - at
        self.faults.append((name, f"{at:.0f} s", f"{normal:.1f} s" + (f"; {note}" if note else "")))
        time.sleep(self.profile.calm_s)  # load alone before the next fault

    def inject_all(self) -> None:
        p = self.profile
        broker = "SIGKILL broker 2 of 3, restart" if p.brokers == 3 else "SIGKILL the only broker, restart"
        self.fault(broker, self.stack.kill_broker, self.stack.start_broker, self._groups_joined)
        for role in p.roles:
            self._kill_role(role)
        self.fault("Redis crashed, restarted (sockets open)", lambda: self.stack.crash("redis"), self.stack.up,
                   self._web_up)
        self.fault("PostgreSQL crashed, restarted", lambda: self.stack.crash("postgres"), self._postgres_back,
                   lambda: self._web_up() and self._groups_joined())
        self._pause_relay()

    def _postgres_back(self) -> None:
        from django.db import connection

        self.stack.up()
        connection.close()  # this process's own connection died with the server

    def _kill_role(self, role: str) -> None:
        killed = {}

        def inject():
            if role == "consumer-notifications":
                self.notifier_kills.append(time.time())
            killed["pid"] = self.roles.kill(role)
            return f"pid {killed['pid']} killed"

        def back():
            pid = self.roles.child(role)
            if pid is None or pid == killed["pid"]:
                return False
            if role == "web":
                return self._web_up()
            if role.startswith("consumer-"):
                return self._groups_joined(role.removeprefix("consumer-"))
            return True

        self.fault(f"SIGKILL {role}, restarted by its supervisor", inject, lambda: None, back, hold=False)

    def _pause_relay(self) -> None:
        from apps.todos.models import OutboxEvent

        held = {}

        def inject():
            self.roles.signal("relay", signal.SIGSTOP)
            return ""

        def recover():
            time.sleep(max(0.0, RELAY_PAUSE_S - self.profile.hold_s))  # the freeze, past the request timeout
            held["rows"] = OutboxEvent.objects.count()
            self.roles.signal("relay", signal.SIGCONT)

        self.fault(f"relay frozen (SIGSTOP) {RELAY_PAUSE_S:.0f} s, resumed", inject, recover,
                   lambda: not OutboxEvent.objects.exists())
        name, at, back = self.faults[-1]
        self.faults[-1] = (name, at, f"{back}; outbox held {held['rows']} rows")

    # --- settle and check --------------------------------------------------------------------
    def stop_load(self) -> None:
        """Stop the commands. Reminders they set keep coming for REMINDER_LEAD_S: until the
        horizon has passed, the system is not settled."""
        from chaos.load import REMINDER_LEAD_S, TIMEOUT_S

        self.horizon = datetime.now(UTC) + timedelta(seconds=REMINDER_LEAD_S[1] + TIMEOUT_S + 1)
        (self.folder / "stop-commands").touch()
        say(f"load stopped after {self.commands_so_far():,} commands; waiting for the system to settle")

    def settled(self) -> bool:
        from apps.reminders.models import Reminder
        from apps.todos.models import OutboxEvent
        from chaos.checker import Evidence

        if OutboxEvent.objects.exists() or Reminder.objects.filter(state=Reminder.PENDING,
                                                                     remind_at__lt=self.horizon).exists():
            return False
        try:
            if any(v.lag for v in self._group_views()):
                return False
        except (KafkaException, TimeoutError):
            return False
        evidence = Evidence.gather(self.folder)
        return all(evidence.sockets.get(user, {}).get("versions", {}).get(todo) == sorted(versions)
                   for user, todos in evidence.audience().items() for todo, versions in todos.items())

    def check(self) -> list:
        from apps.projections import services as projection
        from apps.projections.replay import replay
        from chaos import checker

        try:
            took = wait_until(self.settled, timeout=240, what="settling", every=1.0)
            say(f"settled in {took:.0f} s")
        except RuntimeError as exc:
            say(f"{exc}: checking what there is")
        (self.folder / "stop").touch()
        for client in self.clients:
            client.wait(60)
        evidence = checker.Evidence.gather(self.folder)
        before = projection.checksum()
        rebuilt = replay()
        invariants = [
            checker.commands_have_their_events(evidence, relay_killed="relay" in self.profile.roles),
            checker.no_server_errors(evidence),
            checker.projection_equals_replay(before=before, after=projection.checksum(), applied=rebuilt.applied,
                                             records=len(evidence.records)),
            checker.sockets_caught_up(evidence),
            checker.notifications_once(mails=self.mails(), kills=self.notifier_kills, window_s=SMTP_ACK_WINDOW_S,
                                       unsent=checker.unsent_notifications()),
            checker.reminders_once(**checker.reminder_facts(horizon=self.horizon)),
            checker.analytics_agree(),
            checker.device_records_once(evidence, checker.device_records()),
        ]
        return invariants

    def tear_down(self) -> None:
        (self.folder / "stop-commands").touch()
        (self.folder / "stop").touch()
        for client in self.clients:
            try:
                client.wait(30)
            except subprocess.TimeoutExpired:
                client.kill()
        if hasattr(self, "roles"):
            self.roles.stop()
        if hasattr(self, "smtp"):
            self.smtp.stop()
        self.stack.script("down")


def table(headers: tuple[str, ...], rows: list[tuple]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows)]
    line = lambda row: "| " + " | ".join(str(x).ljust(w) for x, w in zip(row, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="one fault of each kind on one broker (make test)")
    parser.add_argument("--brokers", type=int, choices=(1, 3), help="one broker or three (default: 3; --short: 1)")
    args = parser.parse_args(argv)
    profile = SHORT if args.short else FULL
    if args.brokers:
        profile = Profile(**{**profile.__dict__, "brokers": args.brokers})
    run = Run(profile)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(2))  # still tear the stack down
    try:
        run.set_up()
        run.start_load()
        run.inject_all()
        run.stop_load()
        invariants = run.check()
        commands = run.commands_so_far()
    except RuntimeError as exc:
        say(f"the run failed: {exc}")
        return 2
    finally:
        run.tear_down()
    print(f"\nFaults injected ({len(run.faults)}), under load from {len(run.clients)} clients:\n")
    print(table(("fault", "at", "back to normal after"), run.faults))
    print(f"\nInvariants, after {commands:,} commands in {time.monotonic() - run.began:.0f} s:\n")
    print(table(("invariant", "held", "evidence"), [(i.name, "yes" if i.held else "NO", i.evidence) for i in invariants]))
    failed = [i.name for i in invariants if not i.held]
    print(f"\n{'FAILED: ' + '; '.join(failed) if failed else 'every invariant held'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
