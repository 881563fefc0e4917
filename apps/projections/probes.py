"""The monitor's probe of the projection: where it stands on todo-events, per partition, and how
far behind the topic's end (its position is in PostgreSQL, written with its rows)."""
from prometheus_client.core import GaugeMetricFamily

from apps.projections.models import ProjectionOffset
from polystack.ops import kafka_view
from polystack.ops.monitor import Context, probe
from polystack.streaming.topics import TODO_EVENTS, resolve


@probe("projection")
def projection(context: Context):
    topic = resolve(TODO_EVENTS)
    applied = dict(ProjectionOffset.objects.filter(topic=topic).values_list("partition", "next_offset"))
    bounds = kafka_view.offsets(context.admin, kafka_view.partition_ids(context.admin, [topic]))
    position = GaugeMetricFamily("polystack_projection_position", "The next offset the projection applies",
                                 labels=["topic", "partition"])
    lag = GaugeMetricFamily("polystack_projection_lag", "Events on the topic the projection has not applied",
                            labels=["topic", "partition"])
    for (name, partition), (start, end) in sorted(bounds.items()):
        next_offset = applied.get(partition, start)
        position.add_metric([name, str(partition)], next_offset)
        lag.add_metric([name, str(partition)], max(0, end - max(next_offset, start)))
    return [position, lag]
