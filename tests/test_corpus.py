"""Documents have exactly L tokens, distinct content, and stable hashes."""

from __future__ import annotations

import pytest

from kvbench.config.schema import ConfigError, CorpusConfig, ModelConfig
from kvbench.model.corpus import Corpus
from kvbench.model.loading import load_tokenizer


@pytest.fixture(scope="module")
def corpus():
    tokenizer, _ = load_tokenizer(ModelConfig())
    return Corpus(CorpusConfig(), tokenizer)


def test_stream_is_large_enough_for_the_sweep(corpus):
    assert corpus.num_tokens >= 8 * 32768


@pytest.mark.parametrize("length", [1, 256, 4096])
def test_documents_have_exact_length(corpus, length):
    docs = corpus.documents(length, 8)
    assert all(d.doc_ids.shape == (1, length) and d.doc_tokens == length for d in docs)
    if length > 1:  # one-token windows of real text can repeat a token (" the")
        assert len({d.doc_hash for d in docs}) == 8
    assert docs[0].query_ids.shape[0] == 1 and docs[0].query_tokens > 5


def test_documents_are_real_text_and_deterministic(corpus):
    doc = corpus.documents(64, 2)[1]
    text = corpus.tokenizer.decode(doc.doc_ids[0])
    assert sum(c.isalpha() for c in text) > 100
    assert corpus.documents(64, 2)[1].doc_hash == doc.doc_hash


def test_too_long_is_a_config_error(corpus):
    with pytest.raises(ConfigError, match="doc_tokens="):
        corpus.documents(corpus.num_tokens + 1, 1)


def test_corpus_hash_covers_every_document_in_order(corpus):
    import hashlib

    from kvbench.model.corpus import corpus_hash

    hashes = [d.doc_hash for d in corpus.documents(64, 3)]
    assert corpus_hash(hashes) == hashlib.sha256("".join(hashes).encode()).hexdigest()[:16]
    assert len({corpus_hash(hashes), corpus_hash(hashes[::-1]), corpus_hash(hashes[:2])}) == 3
