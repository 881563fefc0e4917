"""One runnable demo per pattern, against the running system (`make run`):

    python manage.py demo --list
    python manage.py demo replay

Each demo is a module here with a one-line TITLE, a WATCH paragraph (what to look at while it
runs) and `run(show, options)`: it acts through the REST API like any client, reads what it
shows from the system itself (the API, Kafka's own offsets, the tables), says each step in
plain words, and undoes what it made. The numbers it prints come from the system, never from
the script: tests/web/test_demos.py runs each one fast and checks them against the system.
"""
from importlib import import_module

DEMOS = {  # name -> module, in the order of the plan's phases
    "replay": "apps.web.demos.replay",
    "fanout": "apps.web.demos.fanout",
    "windows": "apps.web.demos.windows",
    "reminders": "apps.web.demos.reminders",
    "exactly-once": "apps.web.demos.exactly_once",
    "sync": "apps.web.demos.sync",
}


def get(name: str):
    return import_module(DEMOS[name])
