"""Create (or show) the local demo login that `make run` prints. Refused outside DEBUG."""
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


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
        user, _ = User.objects.get_or_create(username=username, defaults={"is_staff": True, "is_superuser": True})
        password = password_file.read_text().strip() if password_file.exists() else ""
        if not password or not user.check_password(password):
            password = secrets.token_urlsafe(12)
            user.set_password(password)
            user.save(update_fields=["password"])
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        base = url.rstrip("/")
        self.stdout.write(
            self.style.SUCCESS(
                f"PolyStack is at {base}/todos/  (admin: {base}/admin/, API: {base}/api/docs/)\n"
                f"Demo login: username {username!r}, password {password!r}"
            )
        )
