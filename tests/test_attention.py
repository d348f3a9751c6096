"""Prefix attention: two passes merged by log-sum-exp equal one attention over all keys (CPU reference)."""

from __future__ import annotations

import pytest
import torch

from kvbench.forward.attention import attention_pass, prefix_attention
from kvbench.forward.reference import merge, merge_stacked, reference_pass

SCALE = 0.25


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_reference_pass_is_sdpa_on_square_causal_and_full_attention():
    q, k, v = _rand(2, 4, 9, 16), _rand(2, 4, 9, 16, seed=1), _rand(2, 4, 9, 16, seed=2)
    for causal in (False, True):
        out, lse = reference_pass(q, k, v, causal, SCALE)
        sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=SCALE)
        assert torch.allclose(out, sdpa, atol=1e-5)
        assert lse.shape == (2, 4, 9)


@pytest.mark.parametrize("causal", [False, True])
def test_reference_pass_reads_each_kv_head_for_its_group_of_query_heads(causal):
    q, k, v = _rand(2, 6, 5, 8), _rand(2, 2, 7, 8, seed=1), _rand(2, 2, 7, 8, seed=2)
    out, lse = reference_pass(q, k, v, causal, SCALE)
    repeated = [t.repeat_interleave(3, dim=1) for t in (k, v)]
    ref_out, ref_lse = reference_pass(q, *repeated, causal, SCALE)
    mask = torch.ones(5, 7, dtype=torch.bool).tril(diagonal=2) if causal else None
    sdpa = torch.nn.functional.scaled_dot_product_attention(q, *repeated, attn_mask=mask, scale=SCALE)
    assert torch.allclose(out, ref_out, atol=1e-6) and torch.allclose(lse, ref_lse, atol=1e-6)
    assert torch.allclose(out, sdpa, atol=1e-5) and lse.shape == (2, 6, 5)


def test_causal_alignment_is_lower_right():
    # 3 queries on 5 keys: the last query sees all 5, the first only the first 3
    q, k, v = _rand(1, 1, 3, 8), _rand(1, 1, 5, 8, seed=1), _rand(1, 1, 5, 8, seed=2)
    out, _ = reference_pass(q, k, v, True, SCALE)
    first, _ = reference_pass(q[:, :, :1], k[:, :, :3], v[:, :, :3], False, SCALE)
    last, _ = reference_pass(q[:, :, 2:], k, v, False, SCALE)
    assert torch.allclose(out[:, :, :1], first, atol=1e-6) and torch.allclose(out[:, :, 2:], last, atol=1e-6)


def test_merge_of_disjoint_key_sets_is_attention_over_their_union():
    q, k, v = _rand(1, 2, 4, 8), _rand(1, 2, 30, 8, seed=1), _rand(1, 2, 30, 8, seed=2)
    whole, _ = reference_pass(q, k, v, False, SCALE)
    parts = [reference_pass(q, k[:, :, a:b], v[:, :, a:b], False, SCALE) for a, b in ((0, 7), (7, 19), (19, 30))]
    assert torch.allclose(merge([o for o, _ in parts], [l for _, l in parts]), whole, atol=1e-6)
    assert not torch.allclose(parts[0][0], whole, atol=1e-3)  # one part alone is not the answer


# triton: a shared document and the own keys in one op (document_own_pass; its reference off CUDA),
# folded its own way; a copy per reader takes the two passes whatever the kernel
@pytest.mark.parametrize("kernel", ["flash", "triton"])
@pytest.mark.parametrize("shared", [True, False], ids=["shared-prefix", "prefix-per-reader"])
def test_prefix_attention_equals_attention_over_prefix_then_own_keys(shared, kernel):
    B, H, Hkv, T, L, d = 3, 4, 2, 5, 40, 16  # grouped-query: 2 query heads per KV head
    q, ko, vo = _rand(B, H, T, d), _rand(B, Hkv, T, d, seed=1), _rand(B, Hkv, T, d, seed=2)
    kp, vp = _rand(1 if shared else B, Hkv, L, d, seed=3), _rand(1 if shared else B, Hkv, L, d, seed=4)
    out = prefix_attention(q, ko, vo, kp, vp, SCALE, kernel)
    ref, _ = reference_pass(
        q, torch.cat([kp.expand(B, -1, -1, -1), ko], 2), torch.cat([vp.expand(B, -1, -1, -1), vo], 2), True, SCALE
    )
    assert out.shape == (B, H, T, d) and torch.allclose(out, ref, atol=1e-5)


def test_attention_pass_returns_one_layout_on_every_path():
    out, lse = attention_pass(_rand(2, 4, 6, 8), _rand(2, 2, 6, 8, seed=1), _rand(2, 2, 6, 8, seed=2), True, SCALE)
    assert out.transpose(1, 2).is_contiguous() and lse.is_contiguous()  # flash's (B, T, H, d) memory


@pytest.mark.parametrize("rows", [1, 96, 128, 512, 1000])
def test_flex_document_kernel_regroups_rows_without_changing_the_attention(rows):
    from kvbench.forward.document_pass import _flex

    q, k, v = _rand(1, 2, rows, 8), _rand(1, 2, 37, 8, seed=1), _rand(1, 2, 37, 8, seed=2)
    out, lse = _flex(q, k, v, SCALE)
    ref_out, ref_lse = reference_pass(q, k, v, False, SCALE)
    assert out.shape == ref_out.shape and lse.shape == ref_lse.shape
    assert torch.allclose(out, ref_out, atol=1e-5) and torch.allclose(lse, ref_lse, atol=1e-5)


def test_merge_ignores_a_part_that_saw_no_key():
    q, k, v = _rand(1, 2, 4, 8), _rand(1, 2, 5, 8, seed=1), _rand(1, 2, 5, 8, seed=2)
    out, lse = reference_pass(q, k, v, False, SCALE)
    none_out, none_lse = torch.zeros_like(out), torch.full_like(lse, float("-inf"))
    assert torch.equal(merge([none_out, out], [none_lse, lse]), out)


def test_chunked_document_pass_sees_each_chunks_own_prefix():
    from kvbench.forward.document_pass import chunk_sequences, chunked_document_pass

    q, k, v = _rand(1, 4, 6, 8), _rand(1, 2, 20, 8, seed=1), _rand(1, 2, 20, 8, seed=2)
    for splits in (1, 3, 20):  # the document whole, in parts of 7 keys (a start on a part's edge), in 1-key parts
        sequences = chunk_sequences(torch.tensor([0, 7, 20]), 2, 2, 20, splits)
        out, lse = chunked_document_pass(q, k, v, sequences, 2, SCALE)
        assert torch.all(out[:, :, :2] == 0) and torch.all(lse[:, :, :2].isneginf())
        for i, start in ((1, 7), (2, 20)):
            mine = q[:, :, 2 * i : 2 * i + 2]
            ref_out, ref_lse = reference_pass(mine, k[:, :, :start], v[:, :, :start], False, SCALE)
            assert torch.allclose(out[:, :, 2 * i : 2 * i + 2], ref_out, atol=1e-6), splits
            assert torch.allclose(lse[:, :, 2 * i : 2 * i + 2], ref_lse, atol=1e-6), splits


@pytest.mark.parametrize("tokens", [1, 3])  # a decode step; a question written into the cache
def test_a_cached_attention_on_the_triton_op_equals_the_two_passes_merged(tokens):
    """document_own_pass over readers' caches (its reference off CUDA): each token sees its reader's
    slots up to its own, after the write, as the masked own-cache pass sees them."""
    from kvbench.forward.attention import cached_prefix_attention
    from kvbench.forward.own_pass import cache_layer

    B, H, Hkv, S, d = 3, 4, 2, 10, 8
    q, k_new, v_new = _rand(B, H, tokens, d), _rand(B, Hkv, tokens, d, seed=1), _rand(B, Hkv, tokens, d, seed=2)
    k, v = _rand(1, Hkv, 30, d, seed=3), _rand(1, Hkv, 30, d, seed=4)
    slots = torch.arange(4, 4 + tokens)
    outs = {}
    for kernel in ("flash", "triton"):
        cache = [cache_layer(k, B, S, token_major=True).copy_(_rand(B, Hkv, S, d, seed=5 + i)) for i in range(2)]
        outs[kernel] = cached_prefix_attention(q, k_new, v_new, k, v, *cache, slots, SCALE, kernel, "masked")
    assert torch.allclose(outs["triton"], outs["flash"], atol=1e-5)


def test_a_chunk_attention_on_the_triton_op_equals_the_variable_length_passes_merged():
    """document_own_pass with a chunk as a reader (its reference off CUDA) folds chunks its own way and
    masks each chunk's own keys causally: the whole chunk attention equals the two passes merged, a
    chunk at 0 included."""
    from kvbench.forward.attention import chunked_prefix_attention
    from kvbench.forward.document_pass import chunk_sequences

    q, k_new, v_new = _rand(1, 4, 9, 8), _rand(1, 2, 9, 8, seed=1), _rand(1, 2, 9, 8, seed=2)
    k, v = _rand(1, 2, 30, 8, seed=3), _rand(1, 2, 30, 8, seed=4)
    sequences = chunk_sequences(torch.tensor([0, 12, 30]), 2, 3, 30, 1)
    outs = {}
    for kernel in ("varlen", "triton"):
        k_out, v_out = torch.empty_like(k_new), torch.empty_like(v_new)
        outs[kernel] = chunked_prefix_attention(q, k_new, v_new, k, v, sequences, 3, k_out, v_out, SCALE, kernel)
        assert torch.equal(k_out, k_new) and torch.equal(v_out, v_new)  # the recomputed KV, for the auditor
    assert torch.allclose(outs["triton"], outs["varlen"], atol=1e-5)


def test_chunk_sequences_cut_each_chunks_prefix_into_the_parts_before_its_start():
    from kvbench.forward.document_pass import chunk_sequences

    # 2 chunks of 4 tokens, 2 query heads per KV head, starts 0 and 9 in 10 tokens, 3 parts of 4 keys
    cu_q, cu_k, used = chunk_sequences(torch.tensor([0, 9]), 2, 4, 10, 3)
    assert cu_q.tolist() == [0, 8, 16, 24, 32, 40, 48]  # part-major: (part 0: chunk 0, 1), (part 1: ...), ...
    assert cu_k.tolist() == [0, 0, 4, 4, 8, 8, 12]  # each part's first key, growing
    assert used.tolist() == [0, 4, 0, 4, 0, 1]  # chunk 1 sees keys 0-8: two whole parts and one key of the third


def test_split_plan_fills_the_sms_with_parts_that_divide_the_document_where_one_is_near():
    from kvbench.forward.document_pass import MIN_SPLIT_TOKENS, split_plan

    # Qwen3-4B shape on an H200: 8 KV heads x 128 folded rows, 132 SMs -> about 33 parts
    assert split_plan(128, 8, 32768, 132) == 32  # parts of 1024 keys
    assert 4096 // split_plan(128, 8, 4096, 132) == MIN_SPLIT_TOKENS  # 16: no part shorter than that
    assert split_plan(128, 8, 3774, 132) == 14  # no divisor of 3774 = 2 * 3 * 17 * 37 in 7..14: a tail of 8
    assert split_plan(128, 8, 256, 132) == 1  # too short to split
    assert split_plan(64 * 128, 8, 16384, 132) == 1  # many readers' rows fill the SMs already
    assert split_plan(128, 8, 7919, 132) > 1 and 7919 % split_plan(128, 8, 7919, 132)  # a prime: a tail


@pytest.mark.parametrize("length", [64, 67])  # divisible by the parts, and with a tail
def test_split_pass_over_parts_read_in_place_equals_one_pass(length):
    from kvbench.forward.document_pass import split_pass

    q, k, v = _rand(1, 2, 6, 8), _rand(1, 2, length, 8), _rand(1, 2, length, 8)
    calls = []

    def run(qs, ks, vs, scale):  # one "kernel" call: (B, H, M, d) queries over (B, H, n, d) keys
        assert ks.shape[:2] == qs.shape[:2]
        same = ks.untyped_storage().data_ptr() == k.untyped_storage().data_ptr()
        calls.append((tuple(ks.shape), same and vs.untyped_storage().data_ptr() == v.untyped_storage().data_ptr()))
        return reference_pass(qs, ks, vs, False, scale)

    out, lse = split_pass(q, k, v, SCALE, 4, run)
    parts = [(2, 4, 16, 8)] + ([(1, 2, 3, 8)] if length == 67 else [])  # batch Hkv x 4 parts; the tail
    assert calls == [(shape, True) for shape in parts]  # the document is read in place, never copied
    ref_out, ref_lse = reference_pass(q, k, v, False, SCALE)
    assert out.shape == ref_out.shape and lse.shape == ref_lse.shape == (1, 2, 6)
    assert torch.allclose(out, ref_out, atol=1e-5) and torch.allclose(lse, ref_lse, atol=1e-5)


def test_merge_stacked_is_merge_over_a_dimension_of_parts():
    parts = [
        reference_pass(_rand(1, 2, 5, 8, seed=s), _rand(1, 2, 9, 8, seed=s + 9), _rand(1, 2, 9, 8), False, SCALE)
        for s in range(3)
    ]
    outs, lses = [o for o, _ in parts], [l for _, l in parts]
    lses[1] = torch.full_like(lses[1], float("-inf"))  # a part that saw no key
    out, lse = merge_stacked(torch.stack(outs, 2), torch.stack(lses, 2), dim=2)
    assert torch.allclose(out, merge(outs, lses), atol=1e-6)
    assert torch.allclose(lse, torch.stack(lses).logsumexp(0))


def test_every_custom_op_returns_what_its_fake_promises_on_cpu():
    """A compiled layer trusts each custom op's fake for shapes and strides (on the H200 a wrong layout
    failed every compiled reader, issue 21); opcheck holds the CPU paths to their fakes, eager and
    under AOT dispatch with dynamic shapes (test_gpu.py holds the CUDA kernels)."""
    from kvbench.forward.attention import causal_attention
    from kvbench.forward.document_pass import document_own_pass, document_pass
    from kvbench.forward.own_pass import cache_layer, write_cache
    from kvbench.forward.varlen import varlen_pass

    rand = lambda *shape: torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    k, v = rand(1, 2, 40, 16), rand(1, 2, 40, 17).narrow(-1, 0, 16)  # a strided value, as views arrive
    doc = (k[0].transpose(0, 1), v[0].transpose(0, 1))  # (L, Hkv, d) views of the document, read in place
    one_reader = rand(1, 4, 1, 16).reshape(1, 2, 2, 16).transpose(1, 2).reshape(2, 2, 16)  # own_step_pass's fold
    assert not one_reader.is_contiguous()
    cases = [
        (document_pass, (rand(1, 2, 12, 16), k, v, 0.25, "auto")),
        # two readers of 2 heads x 3 tokens over the document and 4 own keys each (strided views)
        (document_own_pass, (rand(1, 2, 12, 16), k, v, rand(2, 4, 2, 16).transpose(1, 2), rand(2, 2, 4, 16), 3, 0.25)),
        # the same over their caches of 6 slots, the 3 tokens at slots 2-4
        (
            document_own_pass,
            (
                rand(1, 2, 12, 16),
                k,
                v,
                rand(2, 6, 2, 16).transpose(1, 2),
                rand(2, 2, 6, 16),
                3,
                0.25,
                torch.arange(2, 5),
            ),
        ),
        # an audit's three chunks of 2 heads x 2 tokens, one at 0 (only its own keys), their keys strided views
        (
            document_own_pass,
            (
                rand(1, 2, 12, 16),
                k,
                v,
                *(rand(1, 2, 6, 16)[0].unflatten(1, (3, 2)).transpose(0, 1) for _ in "kv"),
                2,
                0.25,
                None,
                torch.tensor([0, 17, 40], dtype=torch.int32),
            ),
        ),
        (varlen_pass, (rand(12, 2, 16), *doc, *_sequences([0, 4, 12], [0, 0, 0], [20, 0]), 8, 40, 0.25)),
        # one reader's decode step: its folded heads are a strided view (flash writes out so)
        (varlen_pass, (one_reader, *doc, *_sequences([0, 2], [0, 40], [30]), 2, 40, 0.25)),
        (attention_pass, (rand(2, 4, 5, 16), rand(2, 2, 9, 16), rand(2, 2, 9, 16), True, 0.25)),
        # writes into a token-major cache in place, as it declares (what lets a compiled layer not copy it)
        (
            write_cache,
            (
                *(cache_layer(k, 3, 6, token_major=True) for _ in "kv"),
                rand(3, 2, 2, 16),
                v[:, :, :2].expand(3, -1, -1, -1),
                torch.tensor([3, 4]),
            ),
        ),
        (causal_attention, (rand(1, 4, 9, 16), rand(1, 2, 9, 16), rand(1, 2, 9, 16), 0.25)),
    ]
    for op, args in cases:
        torch.library.opcheck(op, args)


def _sequences(cu_q, cu_k, used_k):
    from kvbench.forward.varlen import Sequences

    return Sequences(*(torch.tensor(x, dtype=torch.int32) for x in (cu_q, cu_k, used_k)))


def test_varlen_pass_attends_each_sequence_to_its_own_keys_only():
    """The CPU reference of FlashAttention-2's variable-length call: sequence i's rows see keys
    cu_k[i] .. cu_k[i] + used_k[i] - 1, in place; one with no key gets out 0 and lse +inf, as flash
    writes it."""
    from kvbench.forward.varlen import varlen_pass

    q, k, v = _rand(9, 2, 8), _rand(30, 2, 8, seed=1), _rand(30, 2, 8, seed=2)
    seqs = _sequences([0, 4, 5, 9], [0, 10, 20], [7, 0, 10])  # the second sequence reads nothing
    out, lse = varlen_pass(q, k, v, *seqs, 4, 10, SCALE)
    assert out.shape == q.shape and lse.shape == (2, 9)
    heads_first = lambda t: t.transpose(0, 1).unsqueeze(0)
    for rows, keys in ((slice(0, 4), slice(0, 7)), (slice(5, 9), slice(20, 30))):
        ref_out, ref_lse = reference_pass(
            heads_first(q[rows]), heads_first(k[keys]), heads_first(v[keys]), False, SCALE
        )
        assert torch.allclose(out[rows], ref_out[0].transpose(0, 1), atol=1e-6)
        assert torch.allclose(lse[:, rows], ref_lse[0], atol=1e-6)
    assert torch.all(out[4] == 0) and torch.all(lse[:, 4] == float("inf"))


def test_a_decode_steps_varlen_pass_equals_the_masked_pass_over_each_readers_cache():
    """The flash own-cache pass's folding (G query heads per KV head as rows, one reader a sequence,
    its slots up to the new token's) gives what the masked pass gives, on the token-major cache."""
    from kvbench.forward.own_pass import cache_layer, own_cache_pass, step_sequences

    B, H, Hkv, S, d = 3, 4, 2, 7, 8
    like = torch.zeros(1, Hkv, 1, d)
    k, v = (cache_layer(like, B, S, token_major=True).copy_(_rand(B, Hkv, S, d, seed=s)) for s in (1, 2))
    q, length = _rand(B, H, 1, d), torch.tensor(4)
    out, lse = own_cache_pass(q, k, v, length.reshape(1), SCALE, "flash", step_sequences(B, H // Hkv, S, length))
    ref_out, ref_lse = own_cache_pass(q, k, v, length.reshape(1), SCALE)
    assert torch.allclose(out, ref_out, atol=1e-6) and torch.allclose(lse, ref_lse, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("filled", [0, 3, 7])  # no slot, some, every slot
def test_a_decode_steps_masked_pass_as_products_and_sums_is_the_reference(dtype, filled):
    """One token per reader: the masked pass written as sums (what Inductor fuses on the GPU) gives
    the float32 reference's out and lse, its G query heads reading their KV head, nothing from a
    masked slot (its values are set huge here), and out 0 and lse -inf with no slot allowed."""
    from kvbench.forward.own_pass import masked_step_pass
    from kvbench.forward.reference import masked_pass

    B, H, Hkv, S, d = 3, 6, 2, 7, 8
    q, k, v = (_rand(*shape, seed=s).to(dtype) for s, shape in enumerate([(B, H, 1, d), *[(B, Hkv, S, d)] * 2]))
    allowed = torch.arange(S) < filled
    v[:, :, filled:] = 1e4  # a masked slot that leaked in would show
    out, lse = masked_step_pass(q, k, v, allowed, SCALE)
    ref_out, ref_lse = masked_pass(q, k, v, allowed.unsqueeze(0), SCALE)
    assert out.dtype == dtype and out.shape == (B, H, 1, d) and lse.shape == (B, H, 1)
    assert torch.allclose(out.float(), ref_out.float(), atol=1e-5 if dtype == torch.float32 else 1e-2)
    assert torch.allclose(lse, ref_lse, atol=1e-5)
    if filled == 0:
        assert torch.all(out == 0) and torch.all(lse == float("-inf"))


# The Triton step kernel run by Triton's interpreter on the CPU (TRITON_INTERPRET=1, set before Triton
# compiles anything, so in a process of its own): its program per reader and KV head, the blocks of
# slots it reads up to the new token's (read on the device), and the online softmax across blocks.
_STEP_KERNEL_CASES = """
import torch
from kvbench.forward.own_pass import masked_step_pass
from kvbench.forward.step_kernel import step_pass

g = torch.Generator().manual_seed(0)
for B, H, Hkv, S, d, last, token_major, dtype in [
    (3, 8, 2, 40, 64, 17, True, torch.float16),  # one block, part of it seen, a token-major cache
    (2, 32, 8, 48, 128, 47, False, torch.float16),  # the Qwen3-4B decode step's shape, every slot seen
    (2, 4, 4, 150, 32, 140, False, torch.float32),  # three blocks: the softmax carried across them
    (2, 6, 2, 20, 16, 0, False, torch.float16),  # only slot 0: the new token alone
]:
    rand = lambda *shape: torch.randn(*shape, generator=g).to(dtype)
    q = rand(B, H, 1, d)
    k = rand(B, S, Hkv, d).transpose(1, 2) if token_major else rand(B, Hkv, S, d)
    v = rand(B, Hkv, S, d)
    v[:, :, last + 1 :] = 1e4  # an unseen slot that leaked in would show
    out, lse = step_pass(q, k, v, torch.tensor([last]), d**-0.5)
    ref_out, ref_lse = masked_step_pass(q, k, v, torch.arange(S) <= last, d**-0.5)
    assert out.dtype == dtype and out.shape == (B, H, 1, d) and lse.shape == (B, H, 1), (out.shape, lse.shape)
    err = float((out.float() - ref_out.float()).abs().max()), float((lse - ref_lse).abs().max())
    assert err[0] < (1e-5 if dtype == torch.float32 else 2e-3) and err[1] < 1e-5, (B, H, S, last, err)
print("ok")
"""


def _under_the_interpreter(code: str) -> None:
    """Run ``code`` in a process of its own with ``TRITON_INTERPRET=1``; it prints ``ok`` when its checks hold."""
    import os
    import subprocess
    import sys

    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_the_triton_step_kernel_gives_the_masked_step_pass_under_the_interpreter():
    _under_the_interpreter(_STEP_KERNEL_CASES)


# The split-KV Triton document kernel under the interpreter: row tiles cut short (M not a multiple of
# BLOCK_M), parts and a short last part, a last block cut short, one part (no merge), token-major keys;
# with a key limit per group of rows (the audit's chunks), rows that see no key among them, tiles whose
# rows share a limit and tiles whose rows do not (masked one by one past the nearest); and with the
# readers' own keys as one more part (a reuse's whole attention).
# float16 and float32: the interpreter computes bfloat16 wrongly (numpy has none); the GPU tests take bf16.
_SPLIT_KERNEL_CASES = """
import torch
from kvbench.forward.reference import masked_pass, merge, reference_pass
from kvbench.forward.split_kernel import split_pass

g = torch.Generator().manual_seed(0)
for M, Hkv, L, d, part, token_major, dtype in [
    (40, 2, 300, 64, 128, False, torch.float16),  # parts of 128, 128 and 44 keys, merged
    (128, 2, 200, 128, 1000, True, torch.float16),  # one part: the first kernel writes the out itself
    (5, 3, 257, 32, 64, True, torch.float32),  # five parts, the last of one key
    (130, 1, 150, 16, 64, False, torch.float32),  # two row tiles, the second of 2 rows
    (40, 2, 1100, 16, 64, True, torch.float16),  # 18 parts: the merge reads them all at once (32, padded)
    (3, 1, 2600, 128, 64, False, torch.float32),  # 41 parts all at once, one row a program
]:
    rand = lambda *shape: torch.randn(*shape, generator=g).to(dtype)
    q = rand(1, Hkv, M, d)
    k = rand(1, L, Hkv, d).transpose(1, 2) if token_major else rand(1, Hkv, L, d)
    v = rand(1, Hkv, L, d)
    out, lse = split_pass(q, k, v, d**-0.5, part)
    ref_out, ref_lse = reference_pass(q, k, v, False, d**-0.5)
    assert out.dtype == dtype and out.shape == q.shape and lse.shape == (1, Hkv, M), (out.shape, lse.shape)
    assert out.is_contiguous() and lse.is_contiguous() and lse.dtype == torch.float32
    err = float((out.float() - ref_out.float()).abs().max()), float((lse - ref_lse).abs().max())
    assert err[0] < (1e-5 if dtype == torch.float32 else 2e-3) and err[1] < 1e-5, (M, L, part, err)

# chunks of an audit: rows in groups, group i over the keys before limits[i] (0: none), any part
for M, L, part, group, limits in [
    (96, 300, 128, 24, [0, 130, 300, 64]),  # groups straddle a 64-row tile; a chunk at 0; one sees all
    (64, 500, 128, 32, [129, 384]),  # a limit one key into a part; one at a part's edge
    (40, 200, 1000, 8, [0, 0, 1, 199, 200]),  # one part; two chunks at 0 share a tile with others
    (256, 300, 128, 128, [200, 37]),  # a chunk a tile (128 rows): every key read unmasked; 200 ends mid-part
]:
    q, k, v = (torch.randn(1, 2, n, 32, generator=g) for n in (M, L, L))
    limit = torch.tensor(limits, dtype=torch.int32)
    out, lse = split_pass(q, k, v, 32**-0.5, part, limits=limit, group_rows=group)
    allowed = torch.arange(L)[None, :] < limit.repeat_interleave(group)[:, None]
    ref_out, ref_lse = masked_pass(q, k, v, allowed, 32**-0.5)
    assert torch.allclose(out, ref_out, atol=1e-5) and torch.equal(lse.isneginf(), ref_lse.isneginf()), (M, limits)
    assert torch.allclose(lse[~lse.isneginf()], ref_lse[~ref_lse.isneginf()], atol=1e-5), (M, limits)
    assert torch.all(out[..., limit.repeat_interleave(group) == 0, :] == 0)  # a chunk at 0: out 0, lse -inf

# readers' own keys as one more part: B readers of G heads x T new tokens, T' >= T own keys each
for B, G, T, own, L, part in [
    (1, 4, 8, 8, 300, 128),  # one reader's question: its tile holds only its rows
    (3, 2, 5, 7, 100, 1000),  # own keys before the new tokens (lower-right causal); one document part
    (5, 4, 1, 1, 130, 64),  # one-token readers: a tile spans several readers, each row masked to its own
    (6, 2, 2, 20, 90, 64),  # 120 own keys in 4 blocks: later readers' rows see none of the first blocks
    (2, 7, 32, 32, 100, 1000),  # Qwen2.5-0.5B's 7 heads a KV head: the second tile holds two readers
]:
    M = B * G * T
    rand = lambda *shape: torch.randn(*shape, generator=g)
    q, k, v = rand(1, 2, M, 16), rand(1, 2, L, 16), rand(1, 2, L, 16)
    k_own, v_own = rand(B, 2, own, 16), rand(B, 2, own, 16)
    out, lse = split_pass(q, k, v, 0.25, part, own=(k_own, v_own, T))
    rows, keys = torch.arange(M), torch.arange(B * own)
    allowed = (keys // own == (rows // (G * T))[:, None]) & (keys % own <= (rows % T + own - T)[:, None])
    readers = lambda t: t.transpose(0, 1).reshape(1, 2, B * own, 16)
    doc_out, doc_lse = reference_pass(q, k, v, False, 0.25)
    own_out, own_lse = masked_pass(q, readers(k_own), readers(v_own), allowed, 0.25)
    assert torch.allclose(out, merge([doc_out, own_out], [doc_lse, own_lse]), atol=1e-5), (B, T, own)
    assert torch.allclose(lse, torch.stack([doc_lse, own_lse]).logsumexp(0), atol=1e-5), (B, T, own)

# decoding readers: each reader's cache of S slots, token t seeing the slots up to slots[t] (on the device)
for B, G, T, S, first in [(4, 4, 1, 40, 17), (2, 2, 3, 12, 5), (20, 4, 1, 10, 0)]:
    M = B * G * T
    q, k, v = rand(1, 2, M, 16), rand(1, 2, 100, 16), rand(1, 2, 100, 16)
    k_cache, v_cache = rand(B, S, 2, 16).transpose(1, 2), rand(B, 2, S, 16)  # token-major keys, as flash's cache
    slots = torch.arange(first, first + T)
    out, lse = split_pass(q, k, v, 0.25, 64, own=(k_cache, v_cache, T), slots=slots)
    rows, keys = torch.arange(M), torch.arange(B * S)
    allowed = (keys // S == (rows // (G * T))[:, None]) & (keys % S <= slots[rows % T][:, None])
    caches = lambda t: t.transpose(0, 1).reshape(1, 2, B * S, 16)
    doc_out, doc_lse = reference_pass(q, k, v, False, 0.25)
    own_out, own_lse = masked_pass(q, caches(k_cache), caches(v_cache), allowed, 0.25)
    assert torch.allclose(out, merge([doc_out, own_out], [doc_lse, own_lse]), atol=1e-5), (B, T, S)

# an audit's chunks: both at once, a key limit per chunk on the document and each chunk's own keys
n, G, c, L = 3, 2, 8, 200
q, k, v = rand(1, 2, n * G * c, 16), rand(1, 2, L, 16), rand(1, 2, L, 16)
k_own, v_own = rand(n, 2, c, 16), rand(n, 2, c, 16)
limit = torch.tensor([0, 70, 200], dtype=torch.int32)
out, lse = split_pass(q, k, v, 0.25, 64, limits=limit, group_rows=G * c, own=(k_own, v_own, c))
rows, keys = torch.arange(n * G * c), torch.arange(n * c)
sees = torch.arange(L)[None, :] < limit.repeat_interleave(G * c)[:, None]
causal = (keys // c == (rows // (G * c))[:, None]) & (keys % c <= (rows % c)[:, None])
chunks_keys = lambda t: t.transpose(0, 1).reshape(1, 2, n * c, 16)
doc_out, doc_lse = masked_pass(q, k, v, sees, 0.25)
own_out, own_lse = masked_pass(q, chunks_keys(k_own), chunks_keys(v_own), causal, 0.25)
assert torch.allclose(out, merge([doc_out, own_out], [doc_lse, own_lse]), atol=1e-5)
print("ok")
"""


def test_the_split_kv_triton_kernel_gives_the_reference_pass_under_the_interpreter():
    _under_the_interpreter(_SPLIT_KERNEL_CASES)


@pytest.mark.parametrize(
    ("rows", "tokens", "sms"),
    [(128, 3774, 132), (128, 32768, 132), (256, 3774, 132), (1024, 32768, 132), (4, 300, 132), (8192, 4096, 132)],
)
def test_the_split_kernels_parts_are_whole_blocks_of_at_least_256_keys_filling_the_gpu(rows, tokens, sms):
    pytest.importorskip("triton")
    from kvbench.forward.split_kernel import MIN_PART_TOKENS, block_rows, split_plan

    part = split_plan(rows, 8, tokens, sms)
    parts = -(-tokens // part)
    tiles = 8 * -(-rows // block_rows(rows))
    programs = tiles * parts
    assert part == tokens or (part % 64 == 0 and part >= MIN_PART_TOKENS)
    assert parts == 1 or programs <= sms + tiles  # one wave: split only as far as the SMs need
    # the SMs filled, or the parts as short as they may be
    assert programs >= sms - tiles or part <= MIN_PART_TOKENS + 64 or tokens < 2 * MIN_PART_TOKENS
    limited = split_plan(rows, 8, tokens, sms, limited=True)  # an audit's chunks: about half the programs work
    assert limited == part or (parts < -(-tokens // limited) <= 2 * parts + 1 and limited >= MIN_PART_TOKENS)
    assert limited < part or part == tokens or part <= MIN_PART_TOKENS + 64  # more parts unless none may be shorter


def test_the_triton_step_op_off_cuda_is_the_masked_step_pass():
    """On CPU the op falls back to the masked step pass, so CPU decodes through ``triton`` match ``masked``."""
    from kvbench.forward.own_pass import masked_step_pass, own_cache_pass

    B, H, Hkv, S, d = 2, 4, 2, 9, 8
    q, k, v = (_rand(*shape, seed=s) for s, shape in enumerate([(B, H, 1, d), *[(B, Hkv, S, d)] * 2]))
    slot = torch.tensor([5])
    out, lse = own_cache_pass(q, k, v, slot, SCALE, "triton")
    ref_out, ref_lse = masked_step_pass(q, k, v, torch.arange(S) <= 5, SCALE)
    assert torch.equal(out, ref_out) and torch.equal(lse, ref_lse)
