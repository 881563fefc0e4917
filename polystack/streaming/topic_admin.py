"""Apply the topic registry to a cluster: create what is missing, report drift, change nothing else."""
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from polystack.streaming.topics import TopicSpec

ADMIN_TIMEOUT_S = 30.0


@dataclass
class TopicReport:
    name: str
    status: str  # "created", "ok", "drift", "missing" (check only)
    drift: list[str] = field(default_factory=list)

    def line(self) -> str:
        detail = "; ".join(self.drift)
        return f"{self.status:8} {self.name}" + (f": {detail}" if detail else "")


def _drift(spec: TopicSpec, *, replication_factor: int, metadata, configs: dict) -> list[str]:
    drift = []
    partitions = len(metadata.partitions)
    if partitions != spec.partitions:
        drift.append(f"partitions {partitions}, declared {spec.partitions}")
    replicas = {len(p.replicas) for p in metadata.partitions.values()}
    if replicas and replicas != {replication_factor}:
        drift.append(f"replication factor {sorted(replicas)}, declared {replication_factor}")
    for key, want in sorted(spec.config.items()):
        entry = configs.get(key)
        have = entry.value if entry is not None else None
        if have != want:
            drift.append(f"{key}={have}, declared {want}")
    return drift


def ensure_topics(
    *, admin: AdminClient, specs: Iterable[TopicSpec], replication_factor: int, create: bool = True
) -> list[TopicReport]:
    """Create the missing topics of `specs` (unless create=False) and report drift of the others.

    Drift is never repaired here: changing partitions reshuffles keys across partitions and
    breaks per-key ordering, and config changes deserve a human decision.
    """
    specs = list(specs)
    existing = admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics
    reports: dict[str, TopicReport] = {}

    present = [spec for spec in specs if spec.name in existing]
    if present:
        futures = admin.describe_configs(
            [ConfigResource(ConfigResource.Type.TOPIC, spec.name) for spec in present],
            request_timeout=ADMIN_TIMEOUT_S,
        )
        by_name = {resource.name: future for resource, future in futures.items()}
        for spec in present:
            drift = _drift(
                spec,
                replication_factor=replication_factor,
                metadata=existing[spec.name],
                configs=by_name[spec.name].result(),
            )
            reports[spec.name] = TopicReport(spec.name, "drift" if drift else "ok", drift)

    missing = [spec for spec in specs if spec.name not in existing]
    if missing and create:
        futures = admin.create_topics(
            [
                NewTopic(
                    spec.name,
                    num_partitions=spec.partitions,
                    replication_factor=replication_factor,
                    config=dict(spec.config),
                )
                for spec in missing
            ],
            request_timeout=ADMIN_TIMEOUT_S,
        )
        for name, future in futures.items():
            try:
                future.result()
            except KafkaException as exc:
                # Created meanwhile: by another ensuretopics, or by this request's own retry after
                # a timeout (seen in CI). Either way it exists now, as asked.
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
            reports[name] = TopicReport(name, "created")
    else:
        for spec in missing:
            reports[spec.name] = TopicReport(spec.name, "missing")

    return [reports[spec.name] for spec in specs]
