"""The consumer registry: every registered consumer is runnable and wired to declared topics."""
import pytest

from polystack.streaming import registry
from polystack.streaming.retry import RetryPolicy
from polystack.streaming.topics import BY_NAME

APP_CONSUMERS = {name: d for name, d in registry.get_consumers().items() if not name.startswith("test-")}


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(registry.UnknownConsumerError, match="known consumers: "):
        registry.get_consumer("nope")


def test_two_consumers_cannot_share_a_name():
    definition = registry.ConsumerDefinition(
        name="dup-check", topics=("todo-events",), group_id="g", handler_factory=object, dlq_topic=None
    )
    registry.register(definition)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.ConsumerDefinition(
            name="dup-check", topics=("reminder-events",), group_id="g", handler_factory=object, dlq_topic=None
        ))


def test_a_definition_needs_a_topic():
    with pytest.raises(ValueError, match="subscribes to no topic"):
        registry.ConsumerDefinition(name="x", topics=(), group_id="g", handler_factory=object, dlq_topic=None)


def test_json_decoder_rejects_garbage_as_non_retriable():
    assert registry.decode_json(b'{"a": 1}') == {"a": 1}
    for bad in (b"{", b"\xff", None):
        with pytest.raises(registry.NonRetriableError):
            registry.decode_json(bad)


def test_the_apps_register_their_consumers():
    assert "projections" in APP_CONSUMERS


@pytest.mark.parametrize("name", sorted(APP_CONSUMERS))
def test_every_app_consumer_is_wired_to_declared_topics(name):
    definition = APP_CONSUMERS[name]
    assert all(topic in BY_NAME for topic in definition.topics), "subscribes to declared topics only"
    assert all(topic in BY_NAME for topic in definition.retry_topics), "declared retry topics"
    if name != "dlq-index":  # it reads the DLQs and stores whatever it reads: no DLQ of DLQs
        assert definition.dlq_topics and all(dlq in BY_NAME for dlq in definition.dlq_topics), "declared DLQ topics"
        assert all(definition.dlq_for(topic) for topic in definition.topics), "a DLQ for every topic it reads"
    handler = definition.handler_factory()
    method = {"batch": "handle_batch", "message": "handle", "transactional": "process"}[definition.handler_kind]
    assert callable(getattr(handler, method, None)), f"a {definition.handler_kind} handler has {method}()"


def test_the_kind_of_handler_is_told_once_when_it_registers():
    @registry.consumer(name="test-kind-function", topics=["todo-events"], group_id="g", dlq_topic=None)
    def one(message):
        pass

    @registry.consumer(name="test-kind-batch", topics=["todo-events"], group_id="g", dlq_topic=None)
    class Batch:
        def handle_batch(self, messages):
            return []

    kinds = registry.get_consumers()
    assert (kinds["test-kind-function"].handler_kind, kinds["test-kind-batch"].handler_kind) == ("message", "batch")
    for methods in ({}, {"handle": lambda self, m: None, "handle_batch": lambda self, ms: []}):
        with pytest.raises(TypeError, match="one of them"):
            registry.consumer(name="test-kind-unclear", topics=["todo-events"], group_id="g", dlq_topic=None)(
                type("Unclear", (), methods))


def test_two_consumers_cannot_share_a_topics_retry_topics():
    policy = RetryPolicy(delays_s=(1,))
    first = registry.ConsumerDefinition(name="retry-a", topics=("retry-check",), group_id="a", handler_factory=object,
                                        dlq_topic="d", retry=policy)
    second = registry.ConsumerDefinition(name="retry-b", topics=("retry-check",), group_id="b", handler_factory=object,
                                         dlq_topic="d", retry=policy)
    registry.register(first)  # left registered, as dup-check above: names and topics of these tests only
    with pytest.raises(ValueError, match="already has retry topics"):
        registry.register(second)
