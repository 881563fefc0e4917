"""Settings for the test suite: the real local stack, fast password hashing."""
from polystack.settings.local import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
