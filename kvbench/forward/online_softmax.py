"""One block of keys folded into a running softmax: the step shared by the Triton attention kernels.

FlashAttention's online softmax, in base 2 (``exp2`` is the GPU's native exponential; callers
scale the scores by ``scale x`` :data:`LOG2E` and take :func:`finish` of the final state). It
imports Triton, so only the kernel modules (:mod:`kvbench.forward.step_kernel`,
:mod:`kvbench.forward.split_kernel`) import it.
"""

from __future__ import annotations

import triton
import triton.language as tl

LOG2E = 1.4426950408889634  # exp(x) = exp2(x * LOG2E); for the host (a kernel reads only constexpr globals)


@triton.jit
def online_block(q, k, v, seen, scale_log2, top, total, acc):
    """Fold one block into the running state of ``R`` query rows.

    ``q`` ``(R, D)``; ``k``, ``v`` ``(N, D)`` (unseen keys loaded as zeros); ``seen`` a mask
    broadcastable to ``(R, N)`` (``(1, N)`` where every row sees the same keys); ``top`` ``(R,)``
    running max of the scores in log2 units, ``total`` ``(R,)`` running sum of
    ``exp2(score - top)``, ``acc`` ``(R, D)`` float32 running sum of weighted values. Returns the
    three updated. A row that has seen no key yet keeps ``top = -inf``, ``total = 0``, ``acc = 0``
    and takes up its keys in a later block (a tile of several readers reads their own keys one
    reader after another).
    """
    scores = tl.where(seen, tl.dot(q, tl.trans(k)) * scale_log2, float("-inf"))  # (R, N)
    new_top = tl.maximum(top, tl.max(scores, 1))
    shift = tl.where(new_top == float("-inf"), 0.0, new_top)  # nothing seen yet: not -inf - -inf (NaN)
    p = tl.exp2(scores - shift[:, None])
    shrink = tl.exp2(top - shift)
    total = total * shrink + tl.sum(p, 1)
    acc = acc * shrink[:, None] + tl.dot(p.to(v.dtype), v)
    return new_top, total, acc


@triton.jit
def finish(top, total, acc):
    """The ``(R, D)`` float32 out and ``(R,)`` natural log-sum-exp of :func:`online_block`'s final state;
    a row that saw no key (``total`` 0) gets out 0 and lse ``-inf`` (it weighs nothing in a merge)."""
    seen = total > 0
    out = tl.where(seen[:, None], acc / tl.where(seen, total, 1.0)[:, None], 0.0)
    lse = tl.where(seen, (top + tl.log2(total)) * 0.6931471805599453, float("-inf"))  # ln(2): log2 units to natural
    return out, lse
