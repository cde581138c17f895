"""Keep the cyclic garbage collector's full passes off the worker's long-lived state.

A worker holds hundreds of thousands of long-lived tracked objects (sessions, their lists, the
item index). CPython's full (generation 2) collection walks all of them and stops every thread
meanwhile, 0.2-0.4 s on a VSTAN worker's heap after 200k clicks, each time the long-lived heap has
grown by a quarter: a request to the worker's HTTP surface waits that long.

:class:`GcFreezer` moves every object alive after each poll to the permanent generation
(``gc.freeze``, constant time), so the collector only walks what the current poll allocated.
The price: an object alive at a freeze that later becomes cyclic garbage is not reclaimed until
it is unfrozen; measured on the VSTAN worker, about 90 such objects per poll (kafka-python's
in-flight futures). Every ``full_every_s`` seconds the freezer unfreezes and runs one full
collection, so that garbage stays bounded, at the cost of one full pause per period.
"""

from __future__ import annotations

import gc
import time

#: Seconds between two full collections (the frozen objects unfrozen and walked once).
FULL_EVERY_S = 600.0


class GcFreezer:
    """Call :meth:`tick` once per poll.

    >>> f = GcFreezer(full_every_s=3600.0); f.tick(), f.tick()
    ('full', 'freeze')
    >>> gc.get_freeze_count() > 0
    True
    >>> gc.unfreeze()
    """

    def __init__(self, full_every_s: float = FULL_EVERY_S) -> None:
        self.full_every_s = full_every_s
        self._next_full = 0.0

    def tick(self) -> str:
        now = time.monotonic()
        if now >= self._next_full:
            gc.unfreeze()
            gc.collect()
            self._next_full = now + self.full_every_s
            gc.freeze()
            return "full"
        gc.freeze()
        return "freeze"
