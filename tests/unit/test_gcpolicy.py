"""The web role's GC policy (polystack.gcpolicy): freeze moves what is alive out of the
collections' way; a thaw brings it back and reclaims the cycles among it."""
import gc

from polystack import gcpolicy


class Cycle:
    def __init__(self):
        self.me = self


def test_a_freeze_keeps_objects_out_of_collections_until_a_thaw():
    gc.collect()
    before = gc.get_freeze_count()
    kept = [Cycle() for _ in range(100)]
    gc.freeze()
    try:
        assert gc.get_freeze_count() >= before + 100
        del kept  # garbage now, but frozen: a collection does not look at it
        assert gc.collect() < 100
        assert gcpolicy.thaw() >= 100, "the thaw reclaims the cycles that died while frozen"
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()


def test_the_policy_is_off_when_its_period_is_0(settings, monkeypatch):
    settings.GC_FREEZE_EVERY_S = 0
    started = []
    monkeypatch.setattr(gcpolicy.threading, "Thread", lambda **kwargs: started.append(kwargs))
    gcpolicy.start()
    assert started == []
