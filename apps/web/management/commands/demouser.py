"""Create (or show) the local demo logins that `make run` prints: a user and a teammate in one
team, so that live updates and notifications can be tried in two browser windows. Refused
outside DEBUG."""
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.todos.models import Team


class Command(BaseCommand):
    help = (
        "Create the demo login for local use, or keep the existing one, and print it.\n"
        "Its random password is kept in a git-ignored file so later runs print the same one.\n\n"
        "  python manage.py demouser --url http://127.0.0.1:8000/"
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password-file", type=Path, default=Path(".stack/demo-login"))
        parser.add_argument("--url", default="http://127.0.0.1:8000/")

    def handle(self, *args, username: str, password_file: Path, url: str, **options):
        if not settings.DEBUG:
            raise CommandError("the demo login is for local use only (DEBUG is off)")
        User = get_user_model()
        teammate_name = f"{username}-teammate"
        user, _ = User.objects.get_or_create(username=username, defaults={
            "is_staff": True, "is_superuser": True, "email": f"{username}@polystack.localhost"})
        teammate, _ = User.objects.get_or_create(username=teammate_name,
                                                 defaults={"email": f"{teammate_name}@polystack.localhost"})
        password = password_file.read_text().strip() if password_file.exists() else ""
        if not password or not user.check_password(password) or not teammate.check_password(password):
            password = password if password and user.check_password(password) else secrets.token_urlsafe(12)
            for person in (user, teammate):
                person.set_password(password)
                person.save(update_fields=["password"])
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        team, _ = Team.objects.get_or_create(name="Demo team", owner=user)
        team.members.add(user, teammate)
        base = url.rstrip("/")
        self.stdout.write(
            self.style.SUCCESS(
                f"PolyStack is at {base}/todos/  (admin: {base}/admin/, API: {base}/api/docs/)\n"
                f"Demo logins (one team; try two browser windows): {username!r} and {teammate_name!r}, "
                f"password {password!r}"
            )
        )
