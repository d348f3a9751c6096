"""What every experiment gets, and what it must provide.

An experiment turns settings into measurement points and a point into the measured fields
of one row. The runner (:mod:`kvbench.app`) owns everything else: identity columns, skip
and resume, status on failure, atomic writes, progress and tracking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

from kvbench.artifact import KVArtifact
from kvbench.config import KVBenchConfig
from kvbench.corpus import Corpus
from kvbench.models import LoadedModel


@dataclass
class RunContext:
    """The loaded world one experiment runs in."""

    settings: KVBenchConfig
    lm: LoadedModel
    corpus: Corpus
    device: torch.device
    device_name: str
    dtype: torch.dtype

    def snapshot(self, cache, doc_ids: torch.Tensor) -> KVArtifact:
        """The publisher's artifact: a cloned snapshot of the document cache, stamped with provenance."""
        return KVArtifact.from_cache(cache, model_fingerprint=self.lm.fingerprint,
                                     tokenizer_hash=self.lm.tokenizer_hash, token_ids=doc_ids)


class Experiment(Protocol):
    """One experiment kind. ``points`` enumerates coordinates; ``run_point`` measures one.

    A point is a dict holding at least ``doc_tokens``; other keys (``tier``, ``codec``, ...)
    join the point's identity. ``run_point`` returns row fields (see :mod:`kvbench.rows`);
    it raises to mark the point failed, or returns ``status``/``reason`` to mark it skipped.
    """

    name: str

    def points(self, ctx: RunContext) -> list[dict[str, Any]]: ...

    def run_point(self, ctx: RunContext, point: dict[str, Any]) -> dict[str, Any]: ...
