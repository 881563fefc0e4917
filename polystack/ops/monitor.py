"""The monitor role (`manage.py runmonitor`): what no role can say about itself, measured from
outside at each scrape — consumer lag per group and partition (from Kafka's committed offsets,
so a group whose role is down is seen falling behind), the DLQs, the outbox, the projection's
position.

Each app declares its probes in its own `probes.py` with `@probe("name")`, as consumers are
declared in `consumers.py`: a function of the `Context` returning metric families
(prometheus_client's `GaugeMetricFamily`...). A probe that fails (Kafka or PostgreSQL not
answering) exports nothing that scrape and `polystack_probe_up{probe} 0`: the alerts see a gap,
never a stale number.
"""
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import connection
from django.utils.module_loading import autodiscover_modules
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from polystack.streaming.registry import get_consumers
from polystack.streaming.topics import resolve

logger = logging.getLogger("polystack.ops.monitor")

PROBES: dict[str, Callable] = {}


def probe(name: str):
    """Register a probe (a function of the Context returning metric families) under `name`."""

    def register(func):
        if name in PROBES and PROBES[name] is not func:
            raise ValueError(f"probe {name!r} registered twice")
        PROBES[name] = func
        return func

    return register


def discover() -> dict[str, Callable]:
    autodiscover_modules("probes")
    return PROBES


@dataclass
class Context:
    """What probes share: one admin client, and the group each consumer runs in."""
    admin: object
    group_ids: dict[str, str] = field(default_factory=dict)  # consumer name -> group id (its own unless told)

    def consumer_groups(self) -> dict[str, list[str]]:
        """Each registered consumer's group -> the topics it reads (retry topics too), resolved."""
        wanted = {}
        for name, definition in get_consumers().items():
            group = self.group_ids.get(name, definition.group_id)
            wanted[group] = [resolve(topic) for topic in (*definition.topics, *definition.retry_topics)]
        return wanted


class ProbeCollector(Collector):
    def __init__(self, context: Context, probes: dict[str, Callable]):
        self.context, self.probes = context, probes

    def collect(self) -> Iterable:
        up = GaugeMetricFamily("polystack_probe_up", "Whether the monitor's probe answered at this scrape",
                               labels=["probe"])
        took = GaugeMetricFamily("polystack_probe_seconds", "How long the monitor's probe took", labels=["probe"])
        try:
            for name, func in self.probes.items():
                began = time.monotonic()
                try:
                    families = list(func(self.context))
                except Exception as exc:  # noqa: BLE001 - one probe down says so; the others still report
                    logger.warning("probe %s failed: %s: %s", name, type(exc).__name__, exc)
                    families, ok = [], 0
                else:
                    ok = 1
                yield from families
                up.add_metric([name], ok)
                took.add_metric([name], time.monotonic() - began)
        finally:
            connection.close()  # each scrape runs on a thread of its own: its connection goes with it
        yield up
        yield took
