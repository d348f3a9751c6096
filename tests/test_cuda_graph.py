"""The CUDA-graph helper's CPU-checkable part: no cyclic garbage is collected during a capture."""

from __future__ import annotations

import gc
import weakref

import pytest

from kvbench.forward.cuda_graph import collector_paused


class _Cycle:
    """An object that refers to itself: only the cyclic collector frees it."""

    def __init__(self):
        self.me = self


def test_the_collector_frees_dead_cycles_first_then_stays_off_until_the_capture_ends():
    dead = _Cycle()
    freed = weakref.ref(dead)
    del dead
    assert gc.isenabled() and freed() is not None  # only a collection can free it
    with collector_paused():
        assert freed() is None  # collected before the capture, not during it
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_collector_comes_back_after_an_error_and_stays_off_where_it_was_off():
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("capture failed")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
