"""The garbage collector set for a server that holds many requests at once.

CPython examines its youngest objects whenever 700 more container objects exist than at the last look. With
hundreds of requests in flight, every look examined the live objects of every request and moved them to the
older generations, to be examined again there, and every full collection walked all the objects of the
libraries imported at startup (bench/README.md has the numbers).
"""

import gc

YOUNG_THRESHOLD = 7_000  # a look at the young objects at most every 7,000 more: about 2 ms when it comes


def tune_for_serving() -> None:
    """Called once the node is set up: what exists now lives as long as the process, so the collector need
    never examine it again, and looks at young objects less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
