"""Experiment ``throughput`` on CPU (tiny model): batched readers answer and decode as they would alone."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from conftest import TINY

from kvbench.config.schema import ConfigError, load_settings
from kvbench.experiments.throughput import per_reader_copies, reader_questions
from kvbench.forward import inference
from kvbench.forward.fast import FastForward, GreedyDecoder, ReaderCache
from kvbench.kv.artifact import KVArtifact
from kvbench.run.app import run

CPU = (
    "+exp=throughput",
    "hydra.mode=RUN",
    *TINY,
    "device=cpu",
    "dtype=float32",
    "doc_tokens=[48]",
    "timing.query_tokens=6",
    "throughput.batches=[1,2,8]",
)
DECODE_COLUMNS = (
    "gen_tokens",
    "decode_step_ms",
    "decode_step_ms_p25",
    "decode_step_ms_p75",
    "decode_per_reader_ms",
    "decode_tokens_per_s",
    "decode_compute_floor_ms",
    "decode_memory_floor_ms",
    "decode_per_reader_floor_ms",
    "decode_efficiency",
    "decode_top1_agree",
)


@pytest.fixture(scope="module")
def readers(tiny_lm):
    """The tiny model's fast forward, a 48-token document's KV and 3 readers' 6-token questions."""
    gen = torch.Generator().manual_seed(1)
    doc, questions = torch.randint(0, 5000, (1, 48), generator=gen), torch.randint(0, 5000, (3, 6), generator=gen)
    _, cache = inference.prefill(tiny_lm.model, doc)
    art = KVArtifact.from_cache(cache, model_fingerprint="", tokenizer_hash="", token_ids=doc)
    return FastForward(tiny_lm.model, compile=False), art, questions


def _decode(fwd, kv, ids, steps):
    """``(B, steps + 1, vocab)`` logits of a greedy decode on each reader's own cache."""
    decoder = GreedyDecoder(fwd, kv, ids.shape[0], ids.shape[1], steps, graph=False)
    return torch.stack([logits.clone() for logits in decoder.logits(ids)], dim=1)


def test_every_reader_gets_its_own_question_even_beyond_the_question_set():
    questions = [torch.tensor([[1, 2, 3]]), torch.tensor([[7, 8]])]
    ids = reader_questions(questions, torch.arange(100, 200), 6, 4)
    assert ids.shape == (6, 4) and len({tuple(r.tolist()) for r in ids}) == 6
    assert ids[0].tolist() == [100, 1, 2, 3] and ids[3].tolist() == [103, 7, 8, 7]  # a quote, then the question


def test_batched_logits_equal_single_reader_logits_for_both_methods(make_cfg, tmp_path):
    rows = run(make_cfg(*CPU), tmp_path / "run")
    assert [(r["method"], r["batch"]) for r in rows] == [(m, b) for m in ("shared", "naive") for b in (1, 2, 8)]
    for r in rows:
        assert r["status"] == "ok" and r["batch_top1_agree"] == 1.0 and r["batch_max_abs_logit_diff"] < 1e-4
        assert r["per_reader_ms"] == r["batch_ms"] / r["batch"] and r["query_tokens"] == 6
        assert r["per_reader_floor_ms"] == max(r["compute_floor_ms"], r["memory_floor_ms"])
        assert r["efficiency"] == r["per_reader_floor_ms"] / r["per_reader_ms"]
        assert all(r[c] is None for c in DECODE_COLUMNS)  # gen_tokens=0: no decoding


def test_naive_copies_that_do_not_fit_are_an_oom_row_and_the_sweep_goes_on(make_cfg, tmp_path, monkeypatch):
    import kvbench.experiments.throughput as tp

    real = tp.per_reader_copies

    def limited(artifact, readers):
        if readers > 2:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory: {readers} copies of the document KV")
        return real(artifact, readers)

    monkeypatch.setattr(tp, "per_reader_copies", limited)
    rows = run(make_cfg(*CPU), tmp_path / "run")
    status = {(r["method"], r["batch"]): r["status"] for r in rows}
    assert status == {
        ("shared", 1): "ok",
        ("shared", 2): "ok",
        ("shared", 8): "ok",
        ("naive", 1): "ok",
        ("naive", 2): "ok",
        ("naive", 8): "oom",
    }
    assert "8 copies" in next(r["reason"] for r in rows if r["status"] == "oom")


def test_the_reader_cache_holds_each_readers_past(readers):
    fwd, art, questions = readers
    logits = _decode(fwd, art, questions, 2)
    tokens = logits.argmax(-1)
    for b in range(questions.shape[0]):
        for step in range(3):  # from scratch, no cache: the question and the tokens decoded so far
            again = fwd(torch.cat([questions[b : b + 1], tokens[b : b + 1, :step]], dim=1), art)
            assert torch.allclose(logits[b, step], again[0], atol=1e-5), (b, step)
    assert not torch.allclose(logits[0, 1], fwd(tokens[:1, :1], art)[0], atol=1e-3)  # the question is in the past


@pytest.mark.parametrize("method", ["shared", "naive"])
def test_batched_decode_logits_equal_each_reader_decoded_alone(readers, method):
    fwd, art, questions = readers
    kv = art if method == "shared" else per_reader_copies(art, questions.shape[0])
    batched = _decode(fwd, kv, questions, 4)
    for b in range(questions.shape[0]):
        assert torch.allclose(batched[b], _decode(fwd, art, questions[b : b + 1], 4)[0], atol=1e-5), b
    assert not torch.allclose(batched[0], batched[1], atol=1e-3)


def test_the_timed_step_replays_the_middle_step_of_the_decode(readers):
    fwd, art, questions = readers
    decoder = GreedyDecoder(fwd, art, 3, 6, 4, graph=False)
    logits = torch.stack([step.clone() for step in decoder.logits(questions)], dim=1)
    decoder.cache.rewind(6 + 2)
    assert torch.allclose(decoder.step(logits[:, 2].argmax(-1, keepdim=True)), logits[:, 3], atol=1e-6)


def test_a_decoder_is_freed_when_dropped_without_waiting_for_the_cyclic_collector(readers):
    # a decoder in a reference cycle keeps its CUDA graph until a collection, which can then land
    # inside a later capture and invalidate it (the H200's 32768-token naive point, session 18)
    fwd, art, _ = readers
    decoder = GreedyDecoder(fwd, art, 3, 6, 4, graph=False)
    gone = weakref.ref(decoder)
    gc.disable()
    try:
        del decoder
        assert gone() is None
    finally:
        gc.enable()


def test_decode_columns_are_per_reader_and_beside_their_floors(make_cfg, tmp_path):
    rows = run(make_cfg(*CPU, "throughput.gen_tokens=3"), tmp_path / "run")
    for r in rows:
        assert r["status"] == "ok" and r["gen_tokens"] == 3 and r["decode_top1_agree"] == 1.0
        assert r["decode_step_ms_p25"] <= r["decode_step_ms"] <= r["decode_step_ms_p75"]
        assert r["decode_per_reader_ms"] == r["decode_step_ms"] / r["batch"]
        assert r["decode_tokens_per_s"] == pytest.approx(r["batch"] / r["decode_step_ms"] * 1e3)
        assert r["decode_per_reader_floor_ms"] == max(r["decode_compute_floor_ms"], r["decode_memory_floor_ms"])
        assert r["decode_efficiency"] == r["decode_per_reader_floor_ms"] / r["decode_per_reader_ms"]
        assert r["batch_top1_agree"] == 1.0  # the question's columns as without decoding
    floor = {(r["method"], r["batch"]): r["decode_memory_floor_ms"] for r in rows}
    assert floor[("shared", 1)] == floor[("naive", 1)] and floor[("shared", 8)] < floor[("naive", 8)]


def test_a_negative_gen_tokens_is_a_one_line_config_error(make_cfg):
    with pytest.raises(ConfigError, match=r"^throughput.gen_tokens=-1 is invalid: allowed an integer in 0 .. 100_000$"):
        load_settings(make_cfg(*CPU, "throughput.gen_tokens=-1"))


def test_a_token_major_reader_cache_decodes_as_the_default_one(readers):
    """``fast.own_kernel=flash`` lays each reader's cache out token-major and its decode steps take the
    variable-length pass (off CUDA its float32 reference), which gives the masked pass's logits."""
    fwd, art, questions = readers
    flash = FastForward(fwd.model, compile=False, own_kernel="flash")
    assert flash.reader_cache(art, 3, 10).keys[0].transpose(1, 2).is_contiguous()
    assert fwd.reader_cache(art, 3, 10).keys[0].is_contiguous()
    assert torch.allclose(_decode(flash, art, questions, 4), _decode(fwd, art, questions, 4), atol=1e-6)
    triton = FastForward(fwd.model, compile=False, own_kernel="triton")  # off CUDA: the masked step pass
    assert triton.reader_cache(art, 3, 10).keys[0].is_contiguous()
    assert torch.equal(_decode(triton, art, questions, 4), _decode(fwd, art, questions, 4))
    with pytest.raises(ValueError, match="own_kernel 'fast'"):
        FastForward(fwd.model, compile=False, own_kernel="fast")
    with pytest.raises(ValueError, match="reader cache's kernel 'auto'"):
        ReaderCache.empty(art, 3, 10, "auto")


def test_decode_rows_name_the_own_kernel(make_cfg, tmp_path):
    rows = run(make_cfg(*CPU, "throughput.gen_tokens=2", "fast.own_kernel=flash"), tmp_path / "run")
    assert {r["decode_own_kernel"] for r in rows} == {"flash"} and all(r["decode_top1_agree"] == 1.0 for r in rows)
    # the default, auto, is the masked pass off CUDA half types: nothing was timed, so no time columns
    rows = run(make_cfg(*CPU, "throughput.gen_tokens=2"), tmp_path / "auto")
    assert {r["decode_own_kernel"] for r in rows} == {"masked"}
    assert all(r.get(f"decode_own_{k}_ms") is None for r in rows for k in ("masked", "flash", "triton"))


def test_auto_own_kernel_off_cuda_is_the_masked_pass_untimed(readers):
    fwd, art, _ = readers
    cache = FastForward(fwd.model, compile=False, own_kernel="auto").reader_cache(art, 3, 10)
    assert (cache.kernel, cache.timed) == ("masked", {}) and cache.keys[0].is_contiguous()


def test_auto_own_kernel_keeps_the_faster_once_per_shape_with_its_layout(readers, monkeypatch):
    """Where every kernel can run, ``auto`` times each once per shape, keeps the fastest (a failed one,
    inf, never wins) and lays the cache out for it."""
    from kvbench.forward import kernel_timing, own_pass

    fwd, art, _ = readers
    calls: list[tuple] = []
    times = {"masked": 0.05, "flash": 0.02, "triton": 0.03}

    def fake_ms(what, name, run, reference):  # no kernel runs: this CPU has none of flash's or Triton's
        calls.append((name, run.args[0].shape, run.args[1].transpose(1, 2).is_contiguous()))
        return times[name], None

    monkeypatch.setattr(own_pass, "on_flash", lambda t: True)
    monkeypatch.setattr(kernel_timing, "checked_ms", fake_ms)
    monkeypatch.setattr(kernel_timing, "_timed", {})
    auto = FastForward(fwd.model, compile=False, own_kernel="auto")
    cache = auto.reader_cache(art, 3, 10)
    heads, hkv = fwd.model.config.num_attention_heads, art.keys[0].shape[1]
    assert (cache.kernel, cache.timed) == ("flash", times)
    assert cache.keys[0].shape == (3, hkv, 10, art.keys[0].shape[3]) and cache.keys[0].transpose(1, 2).is_contiguous()
    # each candidate timed on one layer of its own layout: masked and triton head-major, flash token-major
    step = (3, heads, 1, art.keys[0].shape[3])
    assert calls == [("masked", step, False), ("flash", step, True), ("triton", step, False)]
    auto.reader_cache(art, 3, 10)
    assert len(calls) == 3  # the shape's choice is kept
    times["flash"] = float("inf")
    cache = auto.reader_cache(art, 4, 10)
    assert cache.kernel == "triton" and cache.keys[0].is_contiguous() and len(calls) == 6
