"""Every process role of PolyStack: one image, many roles, each started by one command, each
with its metrics endpoint on a port of its own (polystack.metrics)."""
from polystack.streaming.registry import get_consumers

METRICS_PORT_BASE = 9400  # the roles' metrics endpoints: 9400, 9401... in the order of roles()

WEB = "daphne -b {host} -p {port} apps.web.asgi:application"
# Threads, not prefork: one process, whose metrics endpoint sees every task (polystack.metrics).
CELERY_WORKER = "celery -A polystack worker --loglevel INFO --pool threads --concurrency 2"
CELERY_BEAT = "celery -A polystack beat --loglevel INFO --schedule {state_dir}/celerybeat-schedule"


def roles(*, python: str, host: str = "127.0.0.1", port: int = 8000, state_dir: str = ".stack") -> dict[str, str]:
    """Role name -> the command that runs it, in the order `make run` starts them."""
    manage = f"{python} manage.py"
    result = {
        "web": f"{python} -m " + WEB.format(host=host, port=port),
        "worker": f"{python} -m " + CELERY_WORKER,
        "beat": f"{python} -m " + CELERY_BEAT.format(state_dir=state_dir),
        "relay": f"{manage} runrelay",
        "scheduler": f"{manage} runscheduler",
    }
    for name in get_consumers():
        result[f"consumer-{name}"] = f"{manage} runconsumer {name}"
    result["monitor"] = f"{manage} runmonitor"
    return result


def metrics_ports(names) -> dict[str, int]:
    """Each role's metrics port, by its place in roles(): the Procfile and Prometheus' targets
    are made from the same list, so they cannot disagree."""
    return {name: METRICS_PORT_BASE + n for n, name in enumerate(names)}
