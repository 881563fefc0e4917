"""The monitor's probes of the kernel: every consumer group's lag and members (from Kafka), our
topics' partitions and replicas, and the dead letters awaiting triage (from the triage table)."""
from prometheus_client.core import GaugeMetricFamily

from polystack.ops import deadletters, kafka_view
from polystack.ops.monitor import Context, probe
from polystack.streaming.topics import resolved_specs


@probe("consumer-groups")
def consumer_groups(context: Context):
    lag = GaugeMetricFamily("polystack_consumer_group_lag", "Messages a group has still to read, per partition "
                            "(end offset minus committed offset)", labels=["group", "topic", "partition"])
    committed = GaugeMetricFamily("polystack_consumer_group_committed_offset", "The group's committed offset "
                                  "(-1: never committed)", labels=["group", "topic", "partition"])
    members = GaugeMetricFamily("polystack_consumer_group_members", "Members of the group now", labels=["group"])
    state = GaugeMetricFamily("polystack_consumer_group_state", "The group's state (1 for the one it is in)",
                              labels=["group", "state"])
    for group in kafka_view.groups(context.admin, context.consumer_groups()):
        members.add_metric([group.group_id], len(group.members))
        for name in kafka_view.GROUP_STATES.values():
            state.add_metric([group.group_id, name], 1 if group.state == name else 0)
        for p in group.partitions:
            labels = [group.group_id, p.topic, str(p.partition)]
            lag.add_metric(labels, p.lag)
            committed.add_metric(labels, -1 if p.committed is None else p.committed)
    return [lag, committed, members, state]


@probe("topics")
def topic_layout(context: Context):
    held = GaugeMetricFamily("polystack_topic_messages", "Messages a partition holds (end minus start offset)",
                             labels=["topic", "partition"])
    end = GaugeMetricFamily("polystack_topic_end_offset", "A partition's end offset (its high watermark)",
                            labels=["topic", "partition"])
    under = GaugeMetricFamily("polystack_topic_under_replicated_partitions",
                              "Partitions with fewer in-sync replicas than replicas", labels=["topic"])
    leaderless = GaugeMetricFamily("polystack_topic_offline_partitions", "Partitions with no leader", labels=["topic"])
    for topic in kafka_view.topics(context.admin, [spec.name for spec in resolved_specs()]):
        for p in topic.partitions:
            held.add_metric([topic.name, str(p.partition)], p.held)
            end.add_metric([topic.name, str(p.partition)], p.end)
        under.add_metric([topic.name], topic.under_replicated)
        leaderless.add_metric([topic.name], sum(1 for p in topic.partitions if p.leader is None))
    return [held, end, under, leaderless]


@probe("dead-letters")
def dead_letters(context: Context):
    """Letters parked (not yet redriven or discarded), per DLQ topic; every DLQ is named (0 when
    empty), so that an alert on "> 0" also sees a topic go back to 0."""
    letters = GaugeMetricFamily("polystack_dlq_letters", "Dead letters parked, awaiting triage", labels=["topic"])
    oldest = GaugeMetricFamily("polystack_dlq_oldest_letter_age_seconds",
                               "Age of the oldest parked dead letter (0 when none)", labels=["topic"])
    for dlq in deadletters.stats():
        letters.add_metric([dlq["topic"]], dlq["parked"])
        oldest.add_metric([dlq["topic"]], dlq["oldestAgeSeconds"] or 0)
    return [letters, oldest]
