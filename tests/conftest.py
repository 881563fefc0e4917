"""Fixtures over the real local stack (scripts/stack.sh up): one broker for the whole session."""
import pytest

from polystack.streaming import kafka
from tests import helpers


@pytest.fixture(scope="session", autouse=True)
def _stack_is_up():
    try:
        kafka.check_reachable(timeout=10)
    except kafka.KafkaUnreachableError as exc:
        pytest.exit(f"{exc}. Start the stack: make stack-up", returncode=2)


@pytest.fixture
def topic_factory():
    """Create topics private to one test; delete them afterwards."""
    created: list[str] = []

    def make(partitions: int = 1, prefix: str = "test", config: dict | None = None) -> str:
        name = helpers.create_topic(helpers.unique(prefix), partitions, config)
        created.append(name)
        return name

    yield make
    helpers.delete_topics(created)
