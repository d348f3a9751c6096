"""The fast forward and the readers on CPU (tiny model, float32): same answers as HF's paths.

On CPU nothing is compiled or captured, so these run the exact code the CUDA graphs replay.
"""

from __future__ import annotations

import pytest
import torch

from kvbench.forward import inference
from kvbench.forward.fast import Chunks, FastForward, ReaderCache, greedy_continue_fast
from kvbench.forward.readers import GraphReader, HFReader, make_reader, prefill_paths
from kvbench.kv.artifact import KVArtifact


def _artifact(model, doc: torch.Tensor) -> KVArtifact:
    _, cache = inference.prefill(model, doc)
    return KVArtifact.from_cache(cache, model_fingerprint="", tokenizer_hash="", token_ids=doc)


@pytest.fixture(scope="module")
def setup(tiny_lm):
    model = tiny_lm.model
    gen = torch.Generator().manual_seed(1)
    doc, query = torch.randint(0, 5000, (1, 48), generator=gen), torch.randint(0, 5000, (1, 6), generator=gen)
    return model, FastForward(model, compile=False), doc, query, _artifact(model, doc)


def test_fast_reuse_and_prefill_equal_hf(setup):
    model, fwd, doc, query, art = setup
    hf, _ = inference.reuse(model, art, query)
    onepass, _ = inference.prefill(model, torch.cat([doc, query], 1))
    assert torch.allclose(fwd(query, art), hf, atol=1e-5)
    assert torch.allclose(fwd(torch.cat([doc, query], 1)), onepass, atol=1e-5)
    assert model.config._attn_implementation == "sdpa"  # the HF paths keep their own attention


def test_batched_readers_answer_as_they_would_alone(setup):
    model, fwd, doc, query, art = setup
    other = torch.roll(query, 1, dims=1)
    both = fwd(torch.cat([query, other]), art)
    assert torch.allclose(both[0], fwd(query, art)[0], atol=1e-5)
    assert torch.allclose(both[1], fwd(other, art)[0], atol=1e-5)
    assert not torch.allclose(both[0], both[1], atol=1e-3)


def rerun_greedy(fwd, art, query, first_logits, steps):
    """The fast reader's greedy decode before it kept a cache: question + tokens so far re-run per step."""
    tokens, ids = [int(first_logits.argmax(dim=-1))], query
    for _ in range(steps - 1):
        ids = torch.cat([ids, torch.tensor([[tokens[-1]]])], dim=1)
        tokens.append(int(fwd(ids, art).argmax(dim=-1)))
    return tokens


def test_greedy_continuation_equals_hf_decoding(setup):
    model, fwd, doc, query, art = setup
    hf_logits, cache = inference.reuse(model, art, query)
    expected, _ = inference.greedy_continue(model, cache, hf_logits, 8)
    first = fwd(query, art)
    assert greedy_continue_fast(fwd, art, query, first, 8) == expected == rerun_greedy(fwd, art, query, first, 8)
    assert greedy_continue_fast(fwd, art, query, first, 1) == expected[:1]


def test_greedy_continuation_is_incremental(setup):
    """The question is forwarded once and each later step one token: Q + G - 1 tokens, not O(G^2)."""
    model, fwd, doc, query, art = setup
    forwarded = []

    class Counting:  # the forward, counting the tokens of each call
        reader_cache = fwd.reader_cache

        def __call__(self, ids, prefix=None, cache=None):
            forwarded.append(ids.shape[1])
            return fwd(ids, prefix, cache)

    greedy_continue_fast(Counting(), art, query, fwd(query, art), 8)
    assert forwarded == [query.shape[1]] + [1] * 7


def test_every_reader_gives_hf_reuse_logits(setup):
    model, fwd, doc, query, art = setup
    hf, _ = inference.reuse(model, art, query)
    for name in ("hf", "graph", "fast"):
        reader = make_reader(name, model, fwd, art, query, graph=False)
        reader.attach(art)
        assert torch.allclose(reader.query(query), hf, atol=1e-5), name
    assert (HFReader.attach_mode, GraphReader.attach_mode) == ("cache", "copy")


def test_fast_reader_copies_only_kv_that_lives_elsewhere(setup):
    model, fwd, doc, query, art = setup
    pool = KVArtifact([torch.zeros_like(k) for k in art.keys], [torch.zeros_like(v) for v in art.values], art.meta)
    reader = make_reader("fast", model, fwd, pool, query, graph=False)
    reader.attach(pool)
    assert not pool.equals(art)  # its own pool: nothing copied
    reader.attach(art)
    assert pool.equals(art) and torch.allclose(reader.query(query), fwd(query, art), atol=1e-6)


def test_prefill_paths_agree(setup):
    model, fwd, doc, query, art = setup
    full = torch.cat([doc, query], 1)
    paths = prefill_paths(model, fwd, full, graph=False)
    assert set(paths) == {"eager", "fast"} and torch.allclose(paths["eager"](), paths["fast"](), atol=1e-5)


def test_fused_layers_give_the_unfused_logits_and_count_their_copies(setup):
    model, fwd, doc, query, art = setup
    fused = FastForward(model, compile=False, fuse=True)
    assert torch.allclose(fused(query, art), fwd(query, art), atol=1e-5)
    assert torch.allclose(fused(torch.cat([doc, query], 1)), fwd(torch.cat([doc, query], 1)), atol=1e-5)
    copies = [
        p
        for layer in model.model.layers
        for p in (
            layer.self_attn.q_proj.weight,
            layer.self_attn.k_proj.weight,
            layer.self_attn.v_proj.weight,
            layer.mlp.gate_proj.weight,
            layer.mlp.up_proj.weight,
        )
    ]
    assert fused.fused_weight_bytes == sum(p.numel() * p.element_size() for p in copies) > 0
    assert fwd.fused_weight_bytes == 0


# the document pass whole, in 4 parts merged, or through the Triton op (its reference on CPU); on CUDA: chunk_plan
@pytest.mark.parametrize("plan", [("varlen", 1), ("varlen", 4), ("triton", 1)])
def test_chunks_side_by_side_recompute_what_each_chunk_recomputes_alone(setup, monkeypatch, plan):
    from kvbench.audit.recompute import recompute_chunk
    from kvbench.forward import fast
    from kvbench.forward.fast import Chunks

    monkeypatch.setattr(fast, "chunk_plan", lambda *shape: plan)
    model, fwd, doc, query, art = setup
    starts, tokens = [0, 16, 40], 8
    chunks = Chunks.empty(art, torch.tensor(starts), tokens)
    FastForward(model, compile=False, fuse=True).recompute(
        torch.cat([doc[:, s : s + tokens] for s in starts], 1), art, chunks
    )
    for j, s in enumerate(starts):
        alone = recompute_chunk(model, art, doc, s, s + tokens)
        for i, layer in enumerate(alone.layers):
            mine = slice(j * tokens, (j + 1) * tokens)
            assert torch.allclose(chunks.keys[i][:, :, mine], layer.keys[:, :, s : s + tokens], atol=1e-5)
            assert torch.allclose(chunks.values[i][:, :, mine], layer.values[:, :, s : s + tokens], atol=1e-5)


def test_an_unknown_document_kernel_is_refused(setup):
    with pytest.raises(ValueError, match="document_kernel 'fast'"):
        FastForward(setup[0], compile=False, document_kernel="fast")


def test_eager_twin_shares_the_fused_copies_and_measures_the_fusion(setup):
    from kvbench.experiments.base import fuse_logit_diff

    model, fwd, doc, query, art = setup
    fused = FastForward(model, compile=False, fuse=True)
    twin = fused.eager()
    assert not twin.compiled and all(a is b for a, b in zip(twin.layers, fused.layers))
    assert twin.fused_weight_bytes == fused.fused_weight_bytes and torch.equal(twin(query, art), fused(query, art))
    assert 0.0 <= fuse_logit_diff(fused, art, query) < 1e-4


@pytest.mark.parametrize("fuse", [True, False])
def test_every_forward_compiles_whole_and_once_for_all_lengths(setup, monkeypatch, fuse):
    """Each decoder layer of every forward the harness captures (a reuse, a decode step on a reader's
    cache, an audit's chunks, a prefill) traces as one graph with no break (a break would split
    Inductor's fusions and add launches on the GPU), and one graph serves every question and
    document length: only a batch of one is specialised (and an audit's document pass whole or in
    parts, not counted here). Dynamo alone (``backend="eager"``), so it runs on CPU."""
    from torch._dynamo.utils import counters

    from kvbench.forward import fast

    model, plain, doc, query, art = setup
    other = _artifact(model, torch.randint(0, 5000, (1, 80), generator=torch.Generator().manual_seed(2)))
    fwd = FastForward(model, compile=False, fuse=fuse)
    expected = fwd(query, art)
    fwd.layers = [torch.compile(layer, fullgraph=True, backend="eager", dynamic=True) for layer in fwd.layers]
    torch._dynamo.reset()
    graphs = lambda: counters["stats"]["unique_graphs"]
    start = graphs()
    assert torch.allclose(fwd(query, art), expected, atol=1e-5)
    fwd(torch.cat([query, query[:, :3]], 1), other)  # another question length, another document length
    assert graphs() - start == 1
    fwd(torch.cat([query, query.flip(1)]), art)
    fwd(torch.cat([query, query.flip(1), query])[:, :4], other)
    assert graphs() - start == 2  # batches of more than one: one more graph, for every batch size
    cache = fwd.reader_cache(art, 2, 10)
    fwd(torch.cat([query, query]), art, cache)
    cache.advance(query.shape[1])
    fwd(query[:, :1].expand(2, 1), art, cache)  # a decode step
    flash = ReaderCache.empty(art, 2, 10, "flash")
    fwd(query[:, :1].expand(2, 1), art, flash)  # a decode step on the variable-length pass
    fwd.recompute(doc[:, :16], art, Chunks.empty(art, torch.tensor([0, 16]), 8))  # an audit's chunks
    monkeypatch.setattr(fast, "chunk_plan", lambda *shape: ("varlen", 3))
    fwd.recompute(doc[:, :16], art, Chunks.empty(art, torch.tensor([0, 16]), 8))  # the document in parts, merged
    monkeypatch.setattr(fast, "chunk_plan", lambda *shape: ("triton", 1))
    with torch._dynamo.config.patch(recompile_limit=16):  # nine graphs and more; the forward's own limit is higher
        fwd.recompute(doc[:, :16], art, Chunks.empty(art, torch.tensor([0, 16]), 8))  # the Triton kernel's op
        fwd(doc)  # a prefill


def test_a_compiled_forward_fails_at_the_recompile_limit_rather_than_run_eager(setup):
    """Dynamo's default (8 graphs per code object, then a warning and eager layers) would time a
    long throughput job's later points uncompiled; the compiled forward raises the limit above
    what a sweep needs and makes reaching it an error."""
    from kvbench.forward.compiled import RECOMPILE_LIMIT

    # dynamo's own patch, which restores both on exit: monkeypatch's undo hid recompile_limit from
    # torch's config module, and every later compile in the session (flex's) failed reading it
    with torch._dynamo.config.patch(recompile_limit=8, fail_on_recompile_limit_hit=False):
        FastForward(setup[0], compile=True)
        assert torch._dynamo.config.recompile_limit == RECOMPILE_LIMIT
        assert torch._dynamo.config.fail_on_recompile_limit_hit
