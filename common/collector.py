"""Python's cyclic garbage collector around a process's heavy imports and its exit.

Importing TensorFlow and Flower creates about 465,000 objects that live until the process ends.
The collector, triggered by allocation counts, runs seven full collections while they are
created (0.9 s of a 6 s import, measured on the 2-core development machine) and frees nothing:
module-level objects are not garbage. At exit the interpreter runs one more full collection over
everything still alive (1 to 2 s after a 12-cell sweep), again to free memory the operating
system takes back anyway.

Both are CPython's documented switches (:func:`gc.disable`, :func:`gc.freeze`: "move all
objects to a permanent generation and ignore them in all the future collections"). Only process
entry points freeze; library code only pauses, so a test process's collections are unchanged.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_collector() -> Iterator[None]:
    """No cyclic collection inside the block (imports); the collector's state is restored."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def skip_final_collection() -> None:
    """Call last in a process's entry point: every object alive now is frozen, so the
    interpreter's final full collection does not traverse it (reference counting still frees
    what it frees; cycles are left to the operating system)."""
    gc.freeze()
