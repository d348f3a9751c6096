"""Documents of exactly L tokens, and the questions appended to them.

The offline default is real English technical prose every Python install carries: the
standard library's documentation rendered by ``pydoc``. It is built once into a HF
``datasets.Dataset`` and cached on disk. A hub dataset (long-document QA, books) can be
selected instead by users who are online. Texts are tokenised and joined into one token
stream; document ``i`` of length ``L`` is a window of that stream, windows spaced evenly so
they do not overlap whenever the stream holds ``num_docs x L`` tokens.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import pydoc
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from kvbench.config.schema import ConfigError, CorpusConfig
from kvbench.model.hub import from_hub, is_repo_id

log = logging.getLogger(__name__)

PYDOC_VERSION = 1  # bump when the module list or rendering changes
PYDOC_MODULES = (
    "builtins os sys re json typing collections itertools functools pathlib subprocess threading "
    "asyncio logging argparse datetime decimal fractions statistics random string textwrap unittest "
    "email http.client urllib.request socket ssl sqlite3 csv zipfile tarfile shutil tempfile io "
    "struct array heapq bisect dataclasses enum inspect ast dis pickle copy pprint difflib hashlib "
    "hmac secrets uuid xml.etree.ElementTree configparser calendar time math cmath operator "
    "contextlib abc numbers weakref gc types queue sched select signal mmap codecs unicodedata "
    "locale gettext platform traceback warnings doctest pdb timeit trace"
).split()


@dataclass
class Document:
    """One document and its question, as token ids.

    Attributes
    ----------
    doc_ids : torch.Tensor
        ``(1, L)`` int64 document token ids.
    query_ids : torch.Tensor
        ``(1, Q)`` int64 question token ids.
    doc_hash : str
        First 16 hex of the SHA-256 of the document's token ids.
    """

    doc_ids: torch.Tensor
    query_ids: torch.Tensor
    doc_hash: str

    @property
    def doc_tokens(self) -> int:
        return int(self.doc_ids.shape[1])

    @property
    def query_tokens(self) -> int:
        return int(self.query_ids.shape[1])


def token_ids_sha256(token_ids: list[int] | torch.Tensor) -> str:
    """Hash of a token-id sequence (int64 little-endian), used as the document hash."""
    ids = torch.as_tensor(token_ids, dtype=torch.int64).flatten().cpu()
    return hashlib.sha256(ids.numpy().tobytes()).hexdigest()


def corpus_hash(doc_hashes: Iterable[str]) -> str:
    """The rows' ``corpus_hash``: SHA-256 (first 16 hex) over the hashes of every document in the point.

    ``doc_hashes`` are the documents' ``doc_hash`` values in the point's order, joined as they are.
    """
    return hashlib.sha256("".join(doc_hashes).encode()).hexdigest()[:16]


def _pydoc_dataset(cache_dir: Path):
    """The rendered standard-library docs as a cached ``datasets.Dataset`` (title, text)."""
    import datasets

    path = cache_dir / f"pydoc-py{sys.version_info.major}{sys.version_info.minor}-v{PYDOC_VERSION}"
    if path.exists():
        return datasets.load_from_disk(str(path))
    titles, texts = [], []
    for name in PYDOC_MODULES:
        try:
            # pydoc.plaintext (its plain-text renderer) is missing from typeshed's pydoc stub
            texts.append(pydoc.render_doc(importlib.import_module(name), renderer=pydoc.plaintext))  # type: ignore[attr-defined]
            titles.append(name)
        except Exception as exc:  # a module missing on this build of Python is fine
            log.debug("pydoc: skipping %s (%s)", name, exc)
    ds = datasets.Dataset.from_dict({"title": titles, "text": texts})
    ds.save_to_disk(str(path))
    return ds


def _hub_dataset(cfg: CorpusConfig):
    import datasets

    dataset = cfg.dataset
    assert dataset is not None, "CorpusConfig requires corpus.dataset when corpus.source=hub"
    load = lambda: datasets.load_dataset(dataset, cfg.subset, split=cfg.split)
    local = Path(dataset).exists() or not is_repo_id(dataset)
    ds = load() if local else from_hub("corpus.dataset", "dataset", dataset, load, cfg.timeout_s)
    if cfg.text_field not in ds.column_names:
        raise ConfigError(f"corpus.text_field={cfg.text_field!r} is invalid: allowed {' | '.join(ds.column_names)}")
    return ds.select(range(min(cfg.max_texts, len(ds))))


class Corpus:
    """A token stream built from a text dataset, cut into exact-length documents."""

    def __init__(self, cfg: CorpusConfig, tokenizer):
        self.cfg = cfg
        self.tokenizer = tokenizer
        cache_dir = Path(cfg.cache_dir).expanduser() / "corpus"
        ds = _pydoc_dataset(cache_dir) if cfg.source == "pydoc" else _hub_dataset(cfg)
        field = "text" if cfg.source == "pydoc" else cfg.text_field
        sep = tokenizer("\n\n", add_special_tokens=False)["input_ids"]
        stream: list[int] = []
        for text in ds[field]:
            stream.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
            stream.extend(sep)
        self.stream = torch.tensor(stream, dtype=torch.int64)
        self.questions = [
            torch.tensor([tokenizer(q, add_special_tokens=False)["input_ids"]], dtype=torch.int64)
            for q in cfg.questions
        ]
        self.name = cfg.source if cfg.source == "pydoc" else cfg.dataset

    @property
    def num_tokens(self) -> int:
        return int(self.stream.numel())

    def check_length(self, doc_tokens: int) -> None:
        """Raise ConfigError if a document of this length cannot be cut from the corpus."""
        if doc_tokens > self.num_tokens:
            raise ConfigError(
                f"doc_tokens={doc_tokens} is invalid: allowed up to {self.num_tokens} "
                f"(the {self.name} corpus has {self.num_tokens} tokens)"
            )

    def documents(self, doc_tokens: int, num_docs: int) -> list[Document]:
        """``num_docs`` documents of exactly ``doc_tokens`` tokens, each with a question.

        Document ``i`` starts at ``i * (N - L) // (num_docs - 1)`` in the N-token stream and gets
        question ``i mod len(questions)``.
        """
        self.check_length(doc_tokens)
        span = self.num_tokens - doc_tokens
        docs = []
        for i in range(num_docs):
            start = 0 if num_docs == 1 else i * span // (num_docs - 1)
            ids = self.stream[start : start + doc_tokens].unsqueeze(0)
            docs.append(Document(ids, self.questions[i % len(self.questions)], token_ids_sha256(ids)[:16]))
        return docs
