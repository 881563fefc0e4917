"""Garbage collection where CPython's defaults cost us: a process holding thousands of long-lived
sockets (the web role), and work in big batches (consumers, analytics verify).

## The web role: freeze, thaw now and then

CPython's full collection scans every object the collector tracks. A daphne process holding
5,000 sockets tracks millions, and a full collection then stops its event loop, and every
socket's pushes, for 0.9-2 s (measured with a gc.callbacks probe during `make bench`'s 10,000-
socket fan-out; such a pause inside the measurement made p99 0.9-1.6 s instead of ~130 ms).
Full collections come whenever the long-lived heap grew by a quarter: during any wave of connects.

So every GC_FREEZE_EVERY_S the process freezes what is alive (gc.freeze(): into a permanent
generation that collections do not scan), and collections only ever look at what is newer.
The price: cyclic garbage among frozen objects (sockets closed since) is not reclaimed until the
next thaw, every GC_THAW_EVERY_S, which unfreezes and collects once (one full pause, at a known
rhythm, instead of one at every wave of connects). Both are settings; 0 switches a part off.

## Batches: the collector paused
A batch allocates several objects per message that all live until it ends, and the collector
(run every 700 allocations) walked them again and again, then promoted them into full
collections: 30% of the analytics processor's time and of `analytics verify`'s (measured on
200,000 and 100,000 events in one process, with and without the collector). `collector_paused()` switches it off for a batch; what the batch made is freed by
reference counting when it ends, and collections resume between batches for any cycles.
"""
import gc
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

logger = logging.getLogger("polystack.gcpolicy")

_started = threading.Event()


def start() -> None:
    """Start the policy in this process (once; a daemon thread, so it needs no event loop)."""
    if _started.is_set() or settings.GC_FREEZE_EVERY_S <= 0:
        return
    _started.set()
    threading.Thread(target=_run, name="gc-policy", daemon=True).start()


def _run() -> None:
    freeze_every, thaw_every = settings.GC_FREEZE_EVERY_S, settings.GC_THAW_EVERY_S
    thawed_at = time.monotonic()
    while True:
        time.sleep(freeze_every)  # the policy's period, not a wait for an effect
        if thaw_every > 0 and time.monotonic() - thawed_at >= thaw_every:
            thaw()
            thawed_at = time.monotonic()
        gc.freeze()


def thaw() -> int:
    """Unfreeze and collect once; returns what the collection found unreachable."""
    started = time.perf_counter()
    frozen = gc.get_freeze_count()
    gc.unfreeze()
    found = gc.collect()
    logger.info("gc thaw: %d frozen objects looked at, %d unreachable found, in %.0f ms",
                frozen, found, (time.perf_counter() - started) * 1000)
    return found


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cycle collector off for a batch of work (see above). Process-wide: whoever finds it
    already off (another runner's batch, in tests) leaves it as it found it."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
