"""The ways a reader runs its question on a stored document KV, and the ways to prefill.

Readers (config ``readers``; every row names its reader):

* ``hf``: the reference. The KV goes into a fresh transformers ``DynamicCache`` and HF's
  eager forward runs the question (mask built, cache appended by concatenation).
* ``graph``: a preallocated ``StaticCache`` into which ``attach`` copies the KV, and the
  question's forward replayed as a CUDA graph (HF's SDPA path with a full-buffer mask).
* ``fast``: :class:`kvbench.forward.fast.FastForward` replayed as a CUDA graph, reading the
  KV in place (``attach`` copies only when handed KV that lives elsewhere).

Prefill paths: ``eager`` (HF's forward) and ``fast`` (the fast forward with no document,
replayed as a CUDA graph). Without CUDA nothing is captured; the same code runs directly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from kvbench.config.schema import READERS
from kvbench.forward import inference
from kvbench.forward.cuda_graph import Replayable
from kvbench.forward.fast import FastForward
from kvbench.forward.graph import StaticGraphForward
from kvbench.kv.artifact import KVArtifact


class HFReader:
    """Reference reader: a fresh ``DynamicCache`` per read and HF's eager forward."""

    name, attach_mode = "hf", "cache"

    def __init__(self, model):
        self.model = model
        self.cache = None

    def attach(self, kv: KVArtifact) -> None:
        self.cache = kv.to_cache(self.model.config)  # no copy; the question's append concatenates

    def query(self, ids: torch.Tensor) -> torch.Tensor:
        """``(1, vocab)`` float32 logits of the question ``ids`` ``(1, Q)`` on what is attached."""
        return inference.extend(self.model, self.cache, ids)


class GraphReader:
    """Static cache: ``attach`` copies the KV in, the question's forward is a replayed CUDA graph."""

    name, attach_mode = "graph", "copy"

    def __init__(self, model, artifact: KVArtifact, query_ids: torch.Tensor, graph: bool):
        self.fwd = StaticGraphForward(model, artifact.num_tokens, query_ids.shape[1])
        if graph and query_ids.is_cuda:
            self.fwd.capture(artifact, query_ids)

    def attach(self, kv: KVArtifact) -> None:
        self.fwd.attach(kv)

    def query(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fwd.forward(ids)


class FastReader:
    """The fast forward over a KV pool that it reads in place, replayed as a CUDA graph.

    ``pool`` is device memory holding the document's ``(1, kv_heads, L, head_dim)`` layers, as
    a serving engine's KV pool does; the graph is captured reading it. A KV already in the
    pool (the usual case: it was published there) attaches for free; other KV is copied in.
    """

    name, attach_mode = "fast", "reference"

    def __init__(self, fwd: FastForward, pool: KVArtifact, query_ids: torch.Tensor, graph: bool):
        self.pool = pool
        self.call = Replayable(lambda ids: fwd(ids, pool), query_ids, graph=graph)

    def attach(self, kv: KVArtifact) -> None:
        if kv.keys[0].data_ptr() != self.pool.keys[0].data_ptr():
            self.pool.copy_(kv, non_blocking=True)

    def query(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, vocab)``; on CUDA a view of the graph's output, valid until the next query."""
        return self.call(ids)


def make_reader(name: str, model, fwd: FastForward | None, artifact: KVArtifact, query_ids: torch.Tensor, graph: bool):
    """A ready reader of ``name`` for a document like ``artifact`` and questions like ``query_ids``."""
    if name == "hf":
        return HFReader(model)
    if name == "graph":
        return GraphReader(model, artifact, query_ids, graph)
    if name == "fast":
        if fwd is None:
            raise ValueError("the fast reader needs a fast forward (fwd is None)")
        return FastReader(fwd, artifact, query_ids, graph)
    raise KeyError(f"unknown reader {name!r}; known: {READERS}")


def prefill_paths(
    model, fwd: FastForward | None, full_ids: torch.Tensor, graph: bool
) -> dict[str, Callable[[], torch.Tensor]]:
    """Ways to prefill ``full_ids`` ``(1, L + Q)`` to first-token logits.

    ``eager`` always, and ``fast`` with a fast forward.
    """
    paths: dict[str, Callable[[], torch.Tensor]] = {"eager": lambda: inference.prefill(model, full_ids)[0]}
    if fwd is not None:
        call = Replayable(lambda ids: fwd(ids), full_ids, graph=graph, warmup=1)
        paths["fast"] = lambda: call(full_ids)
    return paths
