"""Who hears what: every user has one Channels group; their open sockets join it, and the
realtime and notification consumers send to it.

Group names carry KAFKA_TOPIC_PREFIX, so that systems sharing one Redis (a test beside a
development system, two benchmark runs) never hear each other.
"""
import re

from django.conf import settings

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def user_group(user_id: int | str) -> str:
    return _UNSAFE.sub("-", f"{settings.KAFKA_TOPIC_PREFIX}user.{user_id}")
