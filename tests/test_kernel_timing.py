"""timed_choice's check: a candidate is timed only where its output matches the first candidate's."""

from __future__ import annotations

import pytest
import torch

from kvbench.forward import kernel_timing
from kvbench.forward.kernel_timing import agrees, timed_choice


def _out_and_lse(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    out, lse = torch.randn(2, 4, 8, generator=g), torch.randn(2, 4, generator=g)
    lse[0, 1] = float("-inf")  # a row that saw no key
    return out, lse


def test_outputs_agree_within_bf16_rounding_and_not_beyond():
    out, lse = _out_and_lse()
    assert agrees((out, lse), (out.bfloat16(), lse.clone()))  # another kernel's rounding
    assert not agrees((out, lse), (out + 0.2 * out.std() * torch.randn_like(out), lse))  # a wrong merge's size
    assert not agrees((out, lse), (out, lse.nan_to_num(neginf=0.0)))  # a row that saw no key, now seeing one
    assert not agrees((out, lse), (out, lse.neg()))  # -inf turned +inf, and the rest
    assert not agrees((out, lse), (out[:, :2], lse))  # another shape
    assert not agrees((out, lse), out)  # the lse missing
    assert agrees(out, out.clone()) and not agrees(out, out.flip(0))


def test_a_candidate_that_disagrees_is_refused_loudly_and_never_wins(monkeypatch):
    monkeypatch.setattr(
        kernel_timing, "try_graph_ms", lambda what, name, fn: {"ref": 2.0, "wrong": 0.5, "ok": 1.0}[name]
    )
    monkeypatch.setattr(kernel_timing, "_timed", {})
    out, lse = _out_and_lse()
    candidates = {"ref": lambda: (out, lse), "wrong": lambda: (out.flip(0), lse), "ok": lambda: (out.clone(), lse)}
    with pytest.warns(UserWarning, match="kernel wrong disagrees with the first candidate"):
        name, timed = timed_choice("kernel", ("shape",), lambda: candidates)
    assert name == "ok" and timed == {"ref": 2.0, "wrong": float("inf"), "ok": 1.0}


def test_a_candidate_that_raises_is_refused_loudly(monkeypatch):
    monkeypatch.setattr(kernel_timing, "try_graph_ms", lambda what, name, fn: 1.0)
    monkeypatch.setattr(kernel_timing, "_timed", {})

    def broken():
        raise RuntimeError("no kernel for this shape")

    with pytest.warns(UserWarning, match="kernel broken failed, left out of auto: RuntimeError: no kernel"):
        name, timed = timed_choice("kernel", ("shape",), lambda: {"ref": lambda: torch.ones(3), "broken": broken})
    assert name == "ref" and timed == {"ref": 1.0, "broken": float("inf")}


def test_a_shape_first_seen_inside_a_capture_gets_the_default_untimed_and_is_timed_later(monkeypatch):
    """Nothing can be timed while a CUDA graph is being captured: the callers' shared rule lives here."""
    monkeypatch.setattr(kernel_timing, "try_graph_ms", lambda what, name, fn: {"ref": 2.0, "fast": 1.0}[name])
    monkeypatch.setattr(kernel_timing, "_timed", {})
    made = []
    candidates = lambda: made.append(1) or {"ref": lambda: torch.ones(2), "fast": lambda: torch.ones(2)}
    monkeypatch.setattr(kernel_timing, "_capturing", lambda: True)
    assert timed_choice("kernel", ("shape",), candidates, default="ref") == ("ref", {}) and not made
    with pytest.raises(RuntimeError, match=r"kernel: \('shape',\) was first seen inside a CUDA-graph capture"):
        timed_choice("kernel", ("shape",), candidates)
    monkeypatch.setattr(kernel_timing, "_capturing", lambda: False)
    assert timed_choice("kernel", ("shape",), candidates, default="ref") == ("fast", {"ref": 2.0, "fast": 1.0})
    monkeypatch.setattr(kernel_timing, "_capturing", lambda: True)  # timed now: looked up in a capture
    assert timed_choice("kernel", ("shape",), candidates, default="ref")[0] == "fast" and made == [1]
