"""Apply the topic registry to a cluster: create what is missing, report drift, change nothing else."""
import time
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


def declared_config(spec: TopicSpec, replication_factor: int) -> dict[str, str]:
    """A topic's configuration: its spec's, and with 3 replicas or more a write needs all but
    one in sync (acks=all then survives one broker down, and refuses rather than lose data
    when two are)."""
    if replication_factor >= 3:
        return {"min.insync.replicas": str(replication_factor - 1), **spec.config}
    return dict(spec.config)


def _drift(spec: TopicSpec, *, replication_factor: int, metadata, configs: dict) -> list[str]:
    drift = []
    partitions = len(metadata.partitions)
    if partitions != spec.partitions:
        drift.append(f"partitions {partitions}, declared {spec.partitions}")
    replicas = {len(p.replicas) for p in metadata.partitions.values()}
    if replicas and replicas != {replication_factor}:
        drift.append(f"replication factor {sorted(replicas)}, declared {replication_factor}")
    for key, want in sorted(declared_config(spec, replication_factor).items()):
        entry = configs.get(key)
        have = entry.value if entry is not None else None
        if have != want:
            drift.append(f"{key}={have}, declared {want}")
    return drift


def _reports_of_existing(admin: AdminClient, specs: list[TopicSpec], metadata: dict,
                         replication_factor: int) -> list[TopicReport]:
    if not specs:
        return []
    futures = admin.describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, spec.name) for spec in specs],
        request_timeout=ADMIN_TIMEOUT_S,
    )
    by_name = {resource.name: future for resource, future in futures.items()}
    reports = []
    for spec in specs:
        drift = _drift(spec, replication_factor=replication_factor, metadata=metadata[spec.name],
                       configs=by_name[spec.name].result())
        reports.append(TopicReport(spec.name, "drift" if drift else "ok", drift))
    return reports


def _metadata_showing(admin: AdminClient, names: set[str]) -> dict:
    """The cluster's topics once its metadata shows all of `names` (a topic just created may
    exist on the controller before the broker answering metadata knows it)."""
    deadline = time.monotonic() + ADMIN_TIMEOUT_S
    while True:
        topics = admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics
        if names <= set(topics) or time.monotonic() > deadline:
            return topics
        time.sleep(0.2)  # the broker's metadata catching up with the controller


def ensure_topics(
    *, admin: AdminClient, specs: Iterable[TopicSpec], replication_factor: int, create: bool = True
) -> list[TopicReport]:
    """Create the missing topics of `specs` (unless create=False) and report drift of the others.

    Drift is never repaired here: changing partitions reshuffles keys across partitions and
    breaks per-key ordering, and config changes deserve a human decision.
    """
    specs = list(specs)
    existing = admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics
    present = [spec for spec in specs if spec.name in existing]
    reports = {r.name: r for r in _reports_of_existing(admin, present, existing, replication_factor)}

    missing = [spec for spec in specs if spec.name not in existing]
    if not create:
        reports.update((spec.name, TopicReport(spec.name, "missing")) for spec in missing)
        return [reports[spec.name] for spec in specs]

    already = []
    if missing:
        futures = admin.create_topics(
            [NewTopic(spec.name, num_partitions=spec.partitions, replication_factor=replication_factor,
                      config=declared_config(spec, replication_factor)) for spec in missing],
            request_timeout=ADMIN_TIMEOUT_S,
        )
        for spec in missing:
            try:
                futures[spec.name].result()
                reports[spec.name] = TopicReport(spec.name, "created")
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
                # It existed though the metadata did not show it yet (created a moment ago), or it
                # was created meanwhile: by another ensuretopics, or by this request's own retry
                # after a timeout (seen in CI). Compare it as an existing one.
                already.append(spec)
    if already:
        metadata = _metadata_showing(admin, {spec.name for spec in already})
        shown = [spec for spec in already if spec.name in metadata]
        reports.update((r.name, r) for r in _reports_of_existing(admin, shown, metadata, replication_factor))
        # Still not in the metadata after the wait: it exists (the controller said so), unread.
        reports.update((spec.name, TopicReport(spec.name, "ok", ["exists; metadata not available yet"]))
                       for spec in already if spec.name not in metadata)
    return [reports[spec.name] for spec in specs]
