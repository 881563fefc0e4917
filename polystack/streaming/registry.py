"""Consumers registered by name. Each app declares its own in `apps/<app>/consumers.py`.

    from polystack.streaming.registry import consumer
    from polystack.streaming import topics

    @consumer(name="projections", topics=[topics.TODO_EVENTS], group_id="projection-group",
              dlq_topic=topics.TODO_EVENTS_DLQ)
    def handle(message: Message) -> None:
        ...

`python manage.py runconsumer projections` then runs it (polystack.streaming.runner). A handler
is one of three kinds, told apart once, when it registers:

- a message handler (`MessageHandler`): a function of one message, or a class (instantiated
  once per process) with `handle(message)` and optionally `flush()` (called once a batch was
  handled, before its offsets are committed: the place for batched writes) and `discard()`
  (drop buffered work before the batch is retried);
- a batch handler (`BatchHandler`): a class with `handle_batch(messages)`, which applies a
  whole batch at once and returns the messages it rejects, each with its NonRetriableError.
- a transactional handler (`TransactionalHandler`): a class with `process(batch)`, run exactly
  once by polystack.streaming.transactional — its outputs, dead letters, state store changes
  and offsets committed in one Kafka transaction per batch (`store=` names its state store).

A message handler may declare a retry policy (`retry=RetryPolicy(...)`): what it fails on is
retried later from retry topics, without holding up the partition (polystack.streaming.retry).
"""
import importlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from django.conf import settings
from django.utils.module_loading import autodiscover_modules

from polystack.streaming.retry import RetryPolicy


class NonRetriableError(Exception):
    """Raised by a handler for a message that can never succeed: it goes to the DLQ."""


class UnknownConsumerError(LookupError):
    pass


class Message:
    """One Kafka message as handlers see it: `payload` is the decoded value.

    A thin view over confluent-kafka's message: fields are read from it only when asked for,
    which keeps the runner's per-message cost low (see `make bench`).
    """

    __slots__ = ("raw", "payload")

    def __init__(self, raw, payload: Any):
        self.raw = raw  # the confluent_kafka.Message, for anything this view lacks
        self.payload = payload

    topic = property(lambda self: self.raw.topic())
    partition = property(lambda self: self.raw.partition())
    offset = property(lambda self: self.raw.offset())
    key = property(lambda self: self.raw.key())
    value = property(lambda self: self.raw.value())

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        return self.raw.headers() or []

    @property
    def timestamp_ms(self) -> int | None:
        kind, timestamp = self.raw.timestamp()
        return timestamp if kind else None

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("utf-8", "replace") if value is not None else None
        return None

    def __repr__(self) -> str:
        return f"<Message {self.topic}[{self.partition}]@{self.offset}>"


class MessageHandler(Protocol):
    def handle(self, message: Message) -> None: ...


class BatchHandler(Protocol):
    def handle_batch(self, messages: list[Message]) -> list[tuple[Message, NonRetriableError]]: ...


Handler = MessageHandler | BatchHandler


@dataclass(frozen=True)
class DlqLimit:
    """When to stop loudly instead of parking message after message in the DLQ.

    `max_consecutive` invalid messages in a row, or more than `max_ratio` of the last `window`
    messages (judged once that many were seen). None switches a limit off.
    """

    max_consecutive: int | None = 100
    max_ratio: float | None = 0.5
    window: int = 1000


def decode_json(value: bytes | None) -> Any:
    if value is None:
        raise NonRetriableError("message has no value")
    try:
        return json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NonRetriableError(f"undecodable JSON: {exc}") from None


def decode_bytes(value: bytes | None) -> Any:
    return value


@dataclass(frozen=True)
class ConsumerDefinition:
    name: str
    topics: tuple[str, ...]
    group_id: str
    handler_factory: Callable[[], Handler]
    # Where messages that can never succeed go: one DLQ for all its topics, or one per subscribed
    # topic ({topic: dlq}), so that a dead letter lands next to its kind (reminder-events-dlq).
    dlq_topic: str | dict[str, str] | None
    handler_kind: Literal["message", "batch", "transactional"] = "message"
    commit_mode: Literal["manual", "auto", "transactional"] = "manual"
    store: str | None = None  # a transactional handler's state store (polystack.streaming.state)
    outputs: tuple[str, ...] = ()  # declared topics a transactional handler sends to (checked at start)
    consumer_config: dict[str, Any] = field(default_factory=dict)  # librdkafka settings of its own
    decoder: Callable[[bytes | None], Any] = decode_json
    dlq_limit: DlqLimit = field(default_factory=DlqLimit)
    max_retries: int = 5  # of a whole batch, after an error it cannot pin on one message
    # Retry topics (polystack.streaming.retry): a message whose handler fails is retried later,
    # from <topic>-retry-<n>, while the partition goes on; None: the batch is retried in place.
    retry: RetryPolicy | None = None
    max_batch_size: int = 500
    max_batch_time_ms: int = 0  # how long a batch waits to fill after its first message
    # Manual mode: commit finished work at most this often (0: after every batch). Fewer
    # commit requests for a consumer of many small batches; what a crash leaves uncommitted
    # is redelivered (handlers are idempotent). Revocation and shutdown always commit.
    commit_interval_ms: int = 0
    description: str = ""

    def __post_init__(self):
        object.__setattr__(self, "outputs", tuple(self.outputs))
        if not self.topics:
            raise ValueError(f"consumer {self.name!r} subscribes to no topic")
        if self.handler_kind not in ("message", "batch", "transactional"):
            raise ValueError(f"consumer {self.name!r}: handler_kind must be 'message', 'batch' or 'transactional'")
        if (self.handler_kind == "transactional") != (self.commit_mode == "transactional"):
            raise ValueError(f"consumer {self.name!r}: a transactional handler, and only one, commits transactionally")
        if self.commit_mode not in ("manual", "auto", "transactional"):
            raise ValueError(f"consumer {self.name!r}: commit_mode must be 'manual', 'auto' or 'transactional'")
        if self.store is not None and self.handler_kind != "transactional":
            raise ValueError(f"consumer {self.name!r}: only a transactional handler has a state store")
        if self.retry is not None and (self.handler_kind != "message" or not self.dlq_topic):
            raise ValueError(f"consumer {self.name!r}: retry topics are for a message handler with a DLQ")
        if isinstance(self.dlq_topic, dict):
            if set(self.dlq_topic) != set(self.topics):
                raise ValueError(f"consumer {self.name!r}: a DLQ per topic names each subscribed topic, no other")
            if self.handler_kind == "transactional":
                raise ValueError(f"consumer {self.name!r}: a transactional handler has one DLQ")

    def dlq_for(self, topic: str) -> str | None:
        """The DLQ (unresolved name) of messages from the subscribed `topic`."""
        return self.dlq_topic.get(topic) if isinstance(self.dlq_topic, dict) else self.dlq_topic

    @property
    def retry_topics(self) -> tuple[str, ...]:
        """The retry topics it reads besides its topics (unresolved names)."""
        return tuple(name for topic in self.topics for name in self.retry.topics(topic)) if self.retry else ()

    @property
    def dlq_topics(self) -> tuple[str, ...]:
        """Every DLQ this consumer may write to."""
        if isinstance(self.dlq_topic, dict):
            return tuple(dict.fromkeys(self.dlq_topic.values()))
        return (self.dlq_topic,) if self.dlq_topic else ()


class _FunctionHandler:
    def __init__(self, func: Callable[[Message], None]):
        self.handle = func


_registry: dict[str, ConsumerDefinition] = {}
_discovered = False


def register(definition: ConsumerDefinition) -> ConsumerDefinition:
    existing = _registry.get(definition.name)
    if existing is not None and existing != definition:
        raise ValueError(f"a consumer named {definition.name!r} is already registered")
    # Retry topics are named after their topic alone (<topic>-retry-<n>): a second group
    # retrying the same topic would read the first one's retries.
    shared = {other.name for other in _registry.values() if other.name != definition.name and other.retry
              and definition.retry and set(other.topics) & set(definition.topics)}
    if shared:
        raise ValueError(f"consumer {definition.name!r}: {', '.join(sorted(shared))} already has retry topics "
                         "for one of its topics")
    _registry[definition.name] = definition
    return definition


def consumer(*, name: str, topics: Iterable[str], group_id: str, dlq_topic: str | None, **options):
    """Register the decorated function or handler class as the consumer `name`."""

    def decorate(target):
        factory = target if isinstance(target, type) else (lambda: _FunctionHandler(target))
        kind = _kind_of(name, target)
        if kind == "transactional":
            options.setdefault("commit_mode", "transactional")
        register(
            ConsumerDefinition(
                name=name,
                topics=tuple(topics),
                group_id=group_id,
                handler_factory=factory,
                handler_kind=kind,
                dlq_topic=dlq_topic,
                description=options.pop("description", (target.__doc__ or "").strip().split("\n")[0]),
                **options,
            )
        )
        return target

    return decorate


def _kind_of(name: str, target) -> Literal["message", "batch", "transactional"]:
    if not isinstance(target, type):
        return "message"
    kinds = [kind for kind, method in (("batch", "handle_batch"), ("message", "handle"), ("transactional", "process"))
             if callable(getattr(target, method, None))]
    if len(kinds) != 1:
        raise TypeError(f"consumer {name!r}: {target.__name__} needs handle(message), handle_batch(messages) or "
                        "process(batch), one of them")
    return kinds[0]


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    autodiscover_modules("consumers")
    for module in settings.POLYSTACK_CONSUMER_MODULES:
        importlib.import_module(module)
    _discovered = True


def get_consumers() -> dict[str, ConsumerDefinition]:
    _discover()
    return dict(sorted(_registry.items()))


def get_consumer(name: str) -> ConsumerDefinition:
    consumers = get_consumers()
    try:
        return consumers[name]
    except KeyError:
        known = ", ".join(consumers) or "(none registered)"
        raise UnknownConsumerError(f"unknown consumer {name!r}; known consumers: {known}") from None
