"""The chaos run's own stack and roles: Kafka (one broker or three), PostgreSQL and Redis on ports
of their own under .stack/chaos/ (scripts/stack.sh with STACK_DIR), so that crashing them
touches neither `make test` nor `make run`; and every PolyStack role under
polystack.ops.supervise, as `make run` starts them, so a role that is killed (or that exits when
a server it needs is gone) comes back by itself."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from polystack.ops.roles import roles

ROOT = Path(__file__).resolve().parent.parent
STACK_DIR = ROOT / ".stack" / "chaos"
PIDS = STACK_DIR / "roles.pids"

# Ports apart from the development stack's (9092, 5432, 6379, cluster 19092...).
KAFKA_PORT = 29092
CLUSTER_PORT = 39092
POSTGRES_PORT = 25432
REDIS_PORT = 26379


def environment(*, brokers: int, prefix: str) -> dict[str, str]:
    """What every process of the run gets: the chaos stack's URLs, topics under `prefix`."""
    if brokers == 3:
        kafka = {"KAFKA_BOOTSTRAP_SERVERS": ",".join(f"127.0.0.1:{CLUSTER_PORT + 100 * n}" for n in range(3)),
                 "KAFKA_REPLICATION_FACTOR": "3", "KAFKA_CLUSTER_PORT": str(CLUSTER_PORT)}
    else:
        kafka = {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{KAFKA_PORT}", "KAFKA_REPLICATION_FACTOR": "1"}
    return {
        **kafka,
        "KAFKA_BROKERS": str(brokers),
        "STACK_DIR": str(STACK_DIR),
        "DATABASE_URL": f"postgres://polystack:polystack@127.0.0.1:{POSTGRES_PORT}/polystack_chaos",
        "REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
        "KAFKA_TOPIC_PREFIX": prefix,
        "STREAM_STATE_DIR": str(STACK_DIR / "state"),
        "DJANGO_SETTINGS_MODULE": "polystack.settings.test",
        "DJANGO_DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "LOG_EVENTS": "0",
        "METRICS_PORT": "",
    }


class Stack:
    """The chaos stack's servers, and the faults that crash them."""

    def __init__(self, env: dict[str, str], *, brokers: int):
        self.env = {**os.environ, **env}
        self.brokers = brokers

    def script(self, *args: str) -> None:
        done = subprocess.run([str(ROOT / "scripts" / "stack.sh"), *args], env=self.env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"scripts/stack.sh {' '.join(args)} failed:\n{done.stdout}{done.stderr}")

    def up(self) -> None:
        self.script("up")

    def kill_broker(self) -> None:
        """SIGKILL a broker: node 2 of three (it leads a third of the partitions), or the only one."""
        if self.brokers == 3:
            self.script("node", "kill", "2")
        else:
            self.script("kill", "kafka")

    def start_broker(self) -> None:
        if self.brokers == 3:
            self.script("node", "start", "2")
        self.script("up")  # waits until every broker answers

    def crash(self, server: str) -> None:
        self.script("kill", server)


class Roles:
    """Every role of `make run`, each under polystack.ops.supervise (restarted HOLD seconds
    after it exits), its output in .stack/chaos/logs/<role>.log."""

    def __init__(self, env: dict[str, str], *, web_port: int, hold_s: float, smtp_port: int,
                 without: tuple[str, ...] = ()):
        self.env = {**os.environ, **env, "EMAIL_PORT": str(smtp_port), "EMAIL_HOST": "127.0.0.1"}
        self.commands = roles(python=sys.executable, port=web_port, state_dir=str(STACK_DIR))
        for name in ("monitor", *without):  # the monitor is Prometheus' view; the checker reads Kafka itself
            self.commands.pop(name)
        self.hold_s = hold_s
        self.logs = STACK_DIR / "logs"
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self) -> None:
        self.stop_leftovers()
        shutil.rmtree(self.logs, ignore_errors=True)
        self.logs.mkdir(parents=True)
        for name, command in self.commands.items():
            supervised = [sys.executable, "-m", "polystack.ops.supervise", "--name", name, "--backoff", str(self.hold_s),
                          "--max-backoff", str(self.hold_s), "--", *command.split()]
            log = open(self.logs / f"{name}.log", "w")
            self.processes[name] = subprocess.Popen(supervised, cwd=ROOT, env=self.env, stdout=log,
                                                    stderr=subprocess.STDOUT, start_new_session=True)
        PIDS.write_text("\n".join(str(p.pid) for p in self.processes.values()))

    @staticmethod
    def stop_leftovers() -> None:
        """The roles of a run that was itself killed (its supervisors lead their own sessions)."""
        if not PIDS.exists():
            return
        for pid in map(int, PIDS.read_text().split()):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass  # gone already
        PIDS.unlink()

    def child(self, name: str) -> int | None:
        """The pid of the role's own process (the supervisor's child), None while it is down."""
        pid = self.processes[name].pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def wait_child(self, name: str, *, other_than: int | None = None, timeout: float = 120.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.child(name)
            if pid is not None and pid != other_than:
                return pid
            time.sleep(0.05)  # the poll interval of the supervisor's process table
        raise RuntimeError(f"{name} did not come back within {timeout:.0f} s; see {self.logs / name}.log")

    def kill(self, name: str) -> int:
        """SIGKILL the role's process (its supervisor restarts it after HOLD); the pid killed."""
        pid = self.wait_child(name)
        os.kill(pid, signal.SIGKILL)
        return pid

    def signal(self, name: str, signum: int) -> None:
        os.kill(self.wait_child(name), signum)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 30
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        PIDS.unlink(missing_ok=True)
