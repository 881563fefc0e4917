"""Every process role of PolyStack: one image, many roles, each started by one command."""
from polystack.streaming.registry import get_consumers

WEB = "daphne -b {host} -p {port} apps.web.asgi:application"
CELERY_WORKER = "celery -A polystack worker --loglevel INFO --concurrency 2"
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
    return result
