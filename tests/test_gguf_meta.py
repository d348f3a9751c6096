"""A GGUF's tokenizer and context length read back from the per-machine cache are the ones converted from the file."""

from __future__ import annotations

import pytest

from kvbench.config.schema import DEFAULT_QUESTIONS
from kvbench.model import gguf_meta
from kvbench.model.loading import embedded_gguf_path, tokenizer_hash


@pytest.mark.slow  # converts SmolLM2's tokenizer once (~6 s on 2 cores)
def test_cached_tokenizer_and_context_are_the_files(tmp_path, monkeypatch):
    monkeypatch.setattr(gguf_meta, "CACHE", tmp_path)
    path = embedded_gguf_path()
    converted, context = gguf_meta.gguf_tokenizer(path), gguf_meta.gguf_context(path)
    [entry] = list(tmp_path.iterdir())
    assert len(entry.name) == 64 and {p.name for p in entry.iterdir()} == {"tokenizer", "context_length"}
    cached, cached_context = gguf_meta.gguf_tokenizer(path), gguf_meta.gguf_context(path)
    assert (context, cached_context) == (8192, 8192)
    assert tokenizer_hash(cached) == tokenizer_hash(converted)
    for text in [*DEFAULT_QUESTIONS, "def f(x):\n    return x ** 2  # ünïcode"]:
        assert cached(text)["input_ids"] == converted(text)["input_ids"]
    assert not list(entry.glob(".*.tmp"))
