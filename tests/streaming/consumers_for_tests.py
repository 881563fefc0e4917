"""A consumer for tests that run `manage.py runconsumer` as a real process.

Loaded through POLYSTACK_CONSUMER_MODULES; its topic, group and pace come from the environment.
It records every handled message in a Redis list, so the test can see what was done even
after the process was killed.
"""
import os
import time

import redis
from django.conf import settings

from polystack.streaming.registry import Message, consumer

_redis = None


@consumer(
    name="test-recorder",
    topics=[os.environ.get("TEST_TOPIC", "test-topic-unset")],
    group_id=os.environ.get("TEST_GROUP", "test-group-unset"),
    dlq_topic=os.environ.get("TEST_DLQ") or None,
    max_batch_size=int(os.environ.get("TEST_BATCH_SIZE", "50")),
)
def record(message: Message) -> None:
    """Record the message in Redis after a simulated piece of work."""
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(settings.REDIS_URL)
    _redis.rpush(os.environ["TEST_RECORD_KEY"] + ":started", f"{message.partition}:{message.offset}")
    time.sleep(float(os.environ.get("TEST_HANDLER_DELAY_S", "0")))  # the simulated work
    _redis.rpush(os.environ["TEST_RECORD_KEY"], f"{message.partition}:{message.offset}")
