"""The collector set for serving: what exists at startup is never examined again, and the young generation is
looked at less often."""

import gc

from llmrelay.core.gc_tuning import YOUNG_THRESHOLD, tune_for_serving


def test_startup_objects_are_frozen_and_young_objects_looked_at_less_often():
    before = gc.get_threshold()
    made_at_startup = [{"request": n} for n in range(1000)]
    try:
        tune_for_serving()
        assert gc.get_freeze_count() >= len(made_at_startup)
        assert gc.get_threshold() == (YOUNG_THRESHOLD, before[1], before[2])
        # a full collection no longer walks the frozen objects: they are not among those it tracks
        tracked = {id(thing) for thing in gc.get_objects()}
        assert not any(id(thing) in tracked for thing in made_at_startup)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
