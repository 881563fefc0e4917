"""What the cluster says about our consumer groups and topics, read from Kafka itself (the admin
API: committed offsets, end offsets, group members, partition leaders and replicas). The
monitor role exports it as metrics and the admin's streams page shows it; a group whose role is
down still has its committed offsets, so its lag is seen growing from outside.

Every call takes a timeout and raises KafkaException (or a timeout) when the cluster does not
answer: the callers say so instead of showing stale numbers.
"""
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

TIMEOUT_S = 5.0
# librdkafka's names of a group's states -> Kafka's own (as kafka-consumer-groups.sh shows them)
GROUP_STATES = {"STABLE": "Stable", "PREPARING_REBALANCING": "PreparingRebalance",
                "COMPLETING_REBALANCING": "CompletingRebalance", "EMPTY": "Empty", "DEAD": "Dead", "UNKNOWN": "Unknown"}


@dataclass(frozen=True)
class PartitionPosition:
    topic: str
    partition: int
    start: int  # the first offset still held (retention)
    end: int  # the next offset to be written (high watermark)
    committed: int | None = None  # the group's next offset to read; None: never committed

    @property
    def lag(self) -> int:
        """Messages the group has still to read (all that is held, when it never committed)."""
        return self.end - (self.start if self.committed is None else max(self.committed, self.start))


@dataclass(frozen=True)
class Member:
    member_id: str
    client_id: str
    host: str
    partitions: tuple[tuple[str, int], ...]


@dataclass
class GroupView:
    group_id: str
    state: str  # one of GROUP_STATES' values
    members: list[Member] = field(default_factory=list)
    partitions: list[PartitionPosition] = field(default_factory=list)

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)


@dataclass(frozen=True)
class PartitionLayout:
    partition: int
    leader: int | None
    replicas: tuple[int, ...]
    in_sync: tuple[int, ...]
    start: int
    end: int

    @property
    def held(self) -> int:
        return self.end - self.start


@dataclass
class TopicView:
    name: str
    partitions: list[PartitionLayout]

    @property
    def held(self) -> int:
        return sum(p.held for p in self.partitions)

    @property
    def under_replicated(self) -> int:
        return sum(1 for p in self.partitions if len(p.in_sync) < len(p.replicas))


def _result(future, timeout: float):
    return future.result(timeout=timeout)


# Answers of a broker that does not (yet, or any more) lead a partition, which librdkafka's
# admin results do not mark retriable: a topic just created, a broker just lost.
LEADERSHIP_MOVING = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                     KafkaError.UNKNOWN_TOPIC_OR_PART}


def _retrying(call, timeout: float):
    """call() again while it fails with a retriable error (a partition's leader moving, just
    after a topic's creation or a broker's loss), until `timeout` has passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except KafkaException as exc:
            error = exc.args[0]
            moving = isinstance(error, KafkaError) and (error.retriable() or error.code() in LEADERSHIP_MOVING)
            if not moving or time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # the cluster's metadata catching up, not a wait for an effect


def partition_ids(admin: AdminClient, topics: Iterable[str], timeout: float = TIMEOUT_S) -> dict[str, list[int]]:
    """The partitions of each topic that exists (missing topics are left out)."""
    metadata = admin.list_topics(timeout=timeout)
    return {topic: sorted(metadata.topics[topic].partitions) for topic in topics
            if topic in metadata.topics and metadata.topics[topic].error is None}


def offsets(admin: AdminClient, partitions: dict[str, list[int]], timeout: float = TIMEOUT_S
            ) -> dict[tuple[str, int], tuple[int, int]]:
    """(start, end) of each partition, in two requests whatever their number."""
    tps = [TopicPartition(topic, p) for topic, ps in partitions.items() for p in ps]
    if not tps:
        return {}

    def listed(spec) -> dict[tuple[str, int], int]:
        futures = admin.list_offsets({tp: spec for tp in tps}, request_timeout=timeout)
        return {(tp.topic, tp.partition): _result(future, timeout).offset for tp, future in futures.items()}

    start = _retrying(lambda: listed(OffsetSpec.earliest()), timeout)
    end = _retrying(lambda: listed(OffsetSpec.latest()), timeout)
    return {key: (start[key], end[key]) for key in start}


def groups(admin: AdminClient, wanted: dict[str, list[str]], timeout: float = TIMEOUT_S) -> list[GroupView]:
    """Each group of `wanted` ({group id: the topics it reads}): its state, members and what
    they own, and per partition of its topics the committed offset and the lag."""
    if not wanted:
        return []
    layout = partition_ids(admin, {topic for topics in wanted.values() for topic in topics}, timeout)
    bounds = offsets(admin, layout, timeout)
    described = admin.describe_consumer_groups(list(wanted), request_timeout=timeout)
    views = []
    for group_id, topics in wanted.items():
        description = _result(described[group_id], timeout)
        members = [Member(member_id=m.member_id, client_id=m.client_id, host=m.host,
                          partitions=tuple(sorted((tp.topic, tp.partition) for tp in
                                                  (m.assignment.topic_partitions if m.assignment else []))))
                   for m in description.members]
        requested = [TopicPartition(topic, p) for topic in topics for p in layout.get(topic, [])]
        committed = {}
        if requested:
            answer = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group_id, requested)],
                                                       request_timeout=timeout)
            for tp in _result(answer[group_id], timeout).topic_partitions:
                committed[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else None
        positions = [PartitionPosition(topic=tp.topic, partition=tp.partition, start=bounds[(tp.topic, tp.partition)][0],
                                       end=bounds[(tp.topic, tp.partition)][1],
                                       committed=committed.get((tp.topic, tp.partition)))
                     for tp in requested]
        views.append(GroupView(group_id=group_id, state=GROUP_STATES.get(description.state.name, "Unknown"),
                               members=members, partitions=positions))
    return views


def topics(admin: AdminClient, names: Iterable[str], timeout: float = TIMEOUT_S) -> list[TopicView]:
    """Each existing topic of `names`: per partition its leader, replicas, in-sync replicas and
    the offsets it holds."""
    layout = partition_ids(admin, names, timeout)
    names = sorted(layout)
    if not names:
        return []
    described = admin.describe_topics(TopicCollection(names), request_timeout=timeout)
    bounds = offsets(admin, layout, timeout)
    views = []
    for name in names:
        description = _result(described[name], timeout)
        views.append(TopicView(name=name, partitions=[
            PartitionLayout(partition=p.id, leader=p.leader.id if p.leader is not None else None,
                            replicas=tuple(node.id for node in p.replicas), in_sync=tuple(node.id for node in p.isr),
                            start=bounds[(name, p.id)][0], end=bounds[(name, p.id)][1])
            for p in sorted(description.partitions, key=lambda p: p.id)]))
    return views
