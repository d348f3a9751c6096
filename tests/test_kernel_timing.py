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


def test_plan_fields_report_the_reuse_and_the_decode_step_apart(monkeypatch):
    """One batch and document length, timed once as a reuse and once as a decode step over 48-slot
    caches: each row reads its own plan, and a named kernel reports none."""
    from kvbench.experiments.base import plan_fields
    from kvbench.forward import reuse_plan

    shape = (1, 8, 3774, 128)
    monkeypatch.setattr(
        kernel_timing,
        "_timed",
        {
            (reuse_plan.TIMED, (64, 1, 4, shape, torch.bfloat16, "cuda", None)): {"passes": 1.0, "fused": 2.0},
            (reuse_plan.TIMED, (64, 1, 4, shape, torch.bfloat16, "cuda", (48, "triton"))): {
                "passes": 3.0,
                "fused": 2.5,
            },
        },
    )
    reuse = plan_fields("reuse_attention", "auto", 64, 1, 3774)
    decode = plan_fields("decode_attention", "auto", 64, 1, 3774, slots=48)
    assert reuse == {"reuse_attention": "passes", "reuse_attention_passes_ms": 1.0, "reuse_attention_fused_ms": 2.0}
    assert decode == {"decode_attention": "fused", "decode_attention_passes_ms": 3.0, "decode_attention_fused_ms": 2.5}
    assert plan_fields("decode_attention", "auto", 64, 1, 3774, slots=40) == {}  # another cache: never timed
    assert plan_fields("reuse_attention", "flash", 64, 1, 3774) == {}  # a named kernel: no plan ran
