"""What every demo shares: how it speaks (Show), what it is told (Options), how it acts (Api,
the REST API of the running web role, as any client), and who it acts as (demo_user)."""
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO, TypeVar

from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.authtoken.models import Token

from apps.todos.models import Team
from polystack.streaming.registry import get_consumers

T = TypeVar("T")


class DemoError(Exception):
    """The demo cannot go on (the system is not running, a role is missing): one line for the user."""


@dataclass(frozen=True)
class Options:
    url: str  # the running web role
    pace_s: float  # a pause between steps, for a person to read (0 in the fast mode)
    hold_s: float  # how long a demo keeps a fault in place before it undoes it
    groups: dict[str, str] = field(default_factory=dict)  # consumer name -> its group, when not the registered one
    timeout_s: float = 60.0  # how long it waits for the system to show an effect

    def group_of(self, consumer: str) -> str:
        return self.groups.get(consumer) or get_consumers()[consumer].group_id


class Show:
    """Numbered steps, what to watch, and facts. A fact is one line `  • label: value`, the
    value as the system gave it: the tests read them back."""

    def __init__(self, out: TextIO, options: Options):
        self.out, self.options, self.steps = out, options, 0

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def step(self, text: str) -> None:
        if self.steps and self.options.pace_s:
            time.sleep(self.options.pace_s)  # a pause for the reader, not a wait for an effect
        self.steps += 1
        self.line(f"\n{self.steps}. {text}")

    def say(self, text: str) -> None:
        self.line(f"   {text}")

    def watch(self, text: str) -> None:
        self.line(f"   Watch: {text}")

    def fact(self, label: str, value) -> None:
        assert ": " not in label, f"a fact's label ends at the first ': ' ({label!r})"
        self.line(f"   • {label}: {value}")


class Api:
    """The REST API as a user with a token: (status, body) of each call."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url.rstrip("/"), token

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
        request = urllib.request.Request(
            self.url + path, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json",
                     "Authorization": f"Token {self.token}", "X-Correlation-ID": f"demo-{int(time.time())}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read() or b"null")
            except ValueError:
                return exc.code, None
        except (urllib.error.URLError, OSError) as exc:
            raise DemoError(f"cannot reach the web role at {self.url} ({exc}): is `make run` running?") from None

    def ok(self, method: str, path: str, body: dict | None = None):
        """The body of a call that must succeed (2xx), or DemoError naming the answer."""
        status, answer = self.call(method, path, body)
        if not 200 <= status < 300:
            raise DemoError(f"{method} {path} answered {status}: {str(answer)[:300]}")
        return answer

    def todos(self) -> list[dict]:
        return self.ok("GET", "/api/todos/?page_size=1000")["results"]


def demo_user(username: str) -> tuple:
    """The demo's own user (made once, kept for the next run; it cannot sign in with a
    password) and an API client for it."""
    User = get_user_model()
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=username,
                                                   defaults={"email": f"{username}@polystack.localhost"})
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        token, _ = Token.objects.get_or_create(user=user)
    return user, token.key


def demo_team(name: str, owner, *members) -> Team:
    team, _ = Team.objects.get_or_create(name=name, owner=owner)
    team.members.add(owner, *members)
    return team


def wait_for(condition: Callable[[], T], *, timeout: float, what: str, every: float = 0.2) -> T:
    """Poll until condition() is truthy; DemoError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise DemoError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(every)  # the poll interval of a deadline wait
