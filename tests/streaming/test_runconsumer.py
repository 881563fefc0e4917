"""`manage.py runconsumer` as a real process: shutdown, restart, clear failures."""
import signal

import pytest
import redis
from django.conf import settings

from tests.helpers import committed, manage, produce, unique, wait_until

MODULE = "tests.streaming.consumers_for_tests"


@pytest.fixture
def recorder_env(topic_factory):
    key = unique("processed")
    env = {
        "POLYSTACK_CONSUMER_MODULES": MODULE,
        "TEST_TOPIC": topic_factory(),
        "TEST_GROUP": unique("group"),
        "TEST_RECORD_KEY": key,
    }
    yield env
    redis.Redis.from_url(settings.REDIS_URL).delete(key)


def processed(key: str) -> list[int]:
    raw = redis.Redis.from_url(settings.REDIS_URL).lrange(key, 0, -1)
    return [int(item.split(b":")[1]) for item in raw]


def finish(process, timeout: float = 30.0) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def test_sigterm_mid_batch_loses_nothing_and_commits_only_finished_work(recorder_env):
    total = 300
    produce(recorder_env["TEST_TOPIC"], [{"n": n} for n in range(total)])
    env = {**recorder_env, "TEST_HANDLER_DELAY_S": "0.01", "TEST_BATCH_SIZE": "50"}
    key, group, topic = env["TEST_RECORD_KEY"], env["TEST_GROUP"], env["TEST_TOPIC"]

    first = manage("runconsumer", "test-recorder", "--max-batch-time-ms", "1000", env=env)
    wait_until(lambda: len(processed(key)) >= 70, what="the consumer to be inside its second batch")
    first.send_signal(signal.SIGTERM)
    code, _, err = finish(first)
    assert code == 0, err

    done_before_restart = processed(key)
    offset = committed(group, topic, 1)[0]
    assert 0 < offset < total, "stopped part-way"
    assert set(range(offset)) <= set(done_before_restart), "everything committed had been handled"
    assert offset == len(done_before_restart), "the batch in hand was finished and committed"

    second = manage("runconsumer", "test-recorder", env={**env, "TEST_HANDLER_DELAY_S": "0"})
    try:
        wait_until(lambda: committed(group, topic, 1)[0] == total, what="the restart to finish the topic")
    finally:
        second.send_signal(signal.SIGTERM)
        code, _, err = finish(second)
    assert code == 0, err
    after = processed(key)
    assert sorted(set(after)) == list(range(total)), "nothing lost"
    assert after[len(done_before_restart)] == offset, "the restart resumed at the committed offset"


def test_sigterm_with_a_hung_handler_abandons_the_batch_within_the_join_timeout(recorder_env):
    produce(recorder_env["TEST_TOPIC"], [{"n": n} for n in range(3)])
    env = {**recorder_env, "TEST_HANDLER_DELAY_S": "600"}
    process = manage("runconsumer", "test-recorder", "--join-timeout", "1", env=env)
    started = redis.Redis.from_url(settings.REDIS_URL)
    wait_until(lambda: started.llen(env["TEST_RECORD_KEY"] + ":started"), what="the handler to start its work")
    process.send_signal(signal.SIGTERM)
    code, _, err = finish(process, timeout=20)
    started.delete(env["TEST_RECORD_KEY"] + ":started")
    assert code == 0, err
    assert "batch abandoned" in err
    assert committed(env["TEST_GROUP"], env["TEST_TOPIC"], 1)[0] < 0, "nothing committed"


def test_unknown_consumer_fails_with_the_known_names(recorder_env):
    code, _, err = finish(manage("runconsumer", "no-such-consumer", env=recorder_env))
    assert code != 0
    assert "unknown consumer 'no-such-consumer'" in err
    assert "test-recorder" in err


def test_list_names_topic_and_group(recorder_env):
    code, out, _ = finish(manage("runconsumer", "--list", env=recorder_env))
    assert code == 0
    assert f"test-recorder    topics={recorder_env['TEST_TOPIC']} group={recorder_env['TEST_GROUP']}" in out


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, "Kafka is unreachable at 127.0.0.1:1"),
        ({"DATABASE_URL": "postgres://polystack:polystack@127.0.0.1:1/polystack"},
         "PostgreSQL is unreachable at 127.0.0.1:1/polystack"),
    ],
)
def test_unreachable_dependency_exits_with_one_clear_line(recorder_env, override, named):
    code, out, err = finish(manage("runconsumer", "test-recorder", env={**recorder_env, **override}), timeout=60)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert named in lines[0]
    assert "Traceback" not in err + out


def test_missing_topic_is_named(recorder_env):
    code, _, err = finish(manage("runconsumer", "test-recorder", env={**recorder_env, "TEST_TOPIC": unique("absent")}))
    assert code == 2
    assert "Kafka topic(s) missing" in err and "ensuretopics" in err
