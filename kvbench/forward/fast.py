"""The fast forward: transformers' own decoder layers, driven without mask, cache or Python overhead.

HF's model forward builds a causal mask over the whole cache, and its SDPA path with a mask
repeats the KV heads and cannot use the flash kernel; its cache appends by concatenation.
Here the model's decoder layers run as they are (same weights, same modules), with:

* attention through :func:`kvbench.forward.attention.kvbench_attention`, registered with
  transformers' ``AttentionInterface``: no mask (lower-right causal by construction),
  grouped-query attention without repeated KV, the document's KV read in place
  (``prefix``) on the fastest of FlashAttention-2, cuDNN and a split-KV Triton kernel for the
  shape (``document_kernel``, :mod:`kvbench.forward.document_pass`); a reuse's document and own
  keys in one Triton launch where that times faster (:mod:`kvbench.forward.reuse_plan`), and an
  audit's chunks the same way (:mod:`kvbench.forward.audit_chunks`);
* optionally (``fuse``) q/k/v and gate/up as one GEMM each (:mod:`kvbench.forward.fused`);
* the layers optionally compiled with ``torch.compile`` (regional: one compiled layer
  reused by all layers, dynamic token counts, so one compile serves every length), which
  fuses the norms, rotary embedding, activations and residuals;
* only the last position's hidden state normalised and projected to logits.

Callers capture the whole forward as a CUDA graph (:mod:`kvbench.forward.cuda_graph`). Decoding
readers keep their own KV beside the document's in a :class:`ReaderCache`; an audit recomputes
several chunks of a document in one forward (:meth:`FastForward.recompute`, :class:`Chunks`);
:func:`greedy_continue_fast` decodes one reader (exactness), :class:`GreedyDecoder` answers
and decodes a batch of them, one captured step per token.
Works for llama-style decoders (Llama, Qwen2, Qwen3, SmolLM2): ``model.model`` holds
``embed_tokens``, ``rotary_emb``, ``layers`` and ``norm``; ``model.lm_head`` the head.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from kvbench.config.names import OWN_KERNELS
from kvbench.forward import own_pass
from kvbench.forward.attention import kvbench_attention, register
from kvbench.forward.audit_chunks import chunk_plan
from kvbench.forward.compiled import compiled_layer
from kvbench.forward.cuda_graph import Replayable
from kvbench.forward.document_pass import KERNELS, chunk_sequences
from kvbench.forward.fused import FusedLayer, fused_bytes
from kvbench.forward.reuse_plan import cached_plan, reuse_plan
from kvbench.kv.artifact import KVArtifact


@dataclass
class ReaderCache:
    """Each reader's own KV beside a shared document: its question and the tokens it decoded.

    Attributes
    ----------
    keys, values : list of torch.Tensor
        Per layer ``(B, kv_heads, capacity, head_dim)``, allocated once so that every decode
        step has the same shapes (one CUDA graph serves them all); stored token-major
        (``(B, capacity, kv_heads, head_dim)`` memory) for the ``flash`` kernel, which reads them in place.
    length : torch.Tensor
        0-dim long on the device: slots already filled; a forward writes its tokens from
        there. Only :meth:`advance` and :meth:`rewind` move it, never a forward, so replaying
        one step at a fixed length rewrites the same slot (what timing a step does).
    kernel : str
        A decode step's pass over these caches (:data:`kvbench.forward.own_pass.KERNELS`).
    timed : dict
        Each candidate kernel's median ms on one layer where ``auto`` chose ``kernel``, else empty.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    length: torch.Tensor
    kernel: str = "masked"
    timed: dict[str, float] = field(default_factory=dict)

    @classmethod
    def empty(
        cls, document: KVArtifact, batch: int, capacity: int, kernel: str = "masked", timed: dict | None = None
    ) -> ReaderCache:
        """Zeroed caches of ``capacity`` slots for ``batch`` readers, shaped and placed like ``document``'s
        KV, laid out for ``kernel`` (:func:`kvbench.forward.own_pass.cache_layer`)."""
        if kernel not in own_pass.KERNELS:  # auto is resolved before a cache is made (FastForward.reader_cache)
            raise ValueError(f"a reader cache's kernel {kernel!r}: expected one of {own_pass.KERNELS}")
        layer = lambda t: own_pass.cache_layer(t, batch, capacity, token_major=kernel == "flash")
        length = torch.zeros((), dtype=torch.long, device=document.keys[0].device)
        keys, values = [layer(k) for k in document.keys], [layer(v) for v in document.values]
        return cls(keys, values, length, kernel, timed or {})

    def advance(self, tokens: int) -> None:
        """Keep the last forward's ``tokens`` tokens: the next forward writes after them."""
        self.length.add_(tokens)

    def rewind(self, length: int) -> None:
        """Forget every slot from ``length`` on (their contents are overwritten by the next forwards)."""
        self.length.fill_(length)


@dataclass
class Chunks:
    """``n`` chunks of ``tokens`` tokens of one document, recomputed side by side in one forward.

    Attributes
    ----------
    starts : torch.Tensor
        ``(n,)`` int64 on the document's device: each chunk's first document position (read on
        the device, so a captured forward serves any chunks).
    tokens : int
        Tokens per chunk; the forward's ids are ``(1, n * tokens)``, chunk ``i`` at ``i * tokens``.
    keys, values : list of torch.Tensor
        Per layer ``(1, kv_heads, n * tokens, head_dim)``: the KV the forward computed for the
        chunks' tokens (written by the forward).
    """

    starts: torch.Tensor
    tokens: int
    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    @classmethod
    def empty(cls, document: KVArtifact, starts: torch.Tensor, tokens: int) -> Chunks:
        """Output buffers for chunks at ``starts`` ``(n,)`` of ``tokens`` tokens, placed like ``document``'s KV."""

        def out(t: torch.Tensor) -> torch.Tensor:
            return t.new_empty(1, t.shape[1], len(starts) * tokens, t.shape[3])

        return cls(starts, tokens, [out(k) for k in document.keys], [out(v) for v in document.values])

    def positions(self) -> torch.Tensor:
        """``(1, n * tokens)`` document positions of the chunks' tokens, on the starts' device."""
        offsets = torch.arange(self.tokens, device=self.starts.device)
        return (self.starts.unsqueeze(1) + offsets).reshape(1, -1)


class FastForward:
    """One forward of new tokens, optionally on top of a document's KV read in place.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A llama-style causal LM in eval mode.
    compile : bool
        Compile each decoder layer with ``torch.compile`` (one compiled code for all layers).
    fuse : bool
        Run each layer as a :class:`kvbench.forward.fused.FusedLayer` (q/k/v and gate/up as one
        GEMM each; the concatenated copies cost :attr:`fused_weight_bytes` of device memory).
    document_kernel : str
        The document pass's kernel: ``auto`` | ``flash`` | ``flex`` | ``cudnn`` | ``triton``
        (:mod:`kvbench.forward.document_pass`).
    own_kernel : str
        A decode step's pass over each reader's own KV: ``auto`` | ``masked`` | ``flash`` | ``triton``
        (:mod:`kvbench.forward.own_pass`; ``auto`` times each per shape when a cache is made);
        caches for it come from :meth:`reader_cache`, which resolves it.
    """

    def __init__(
        self, model, *, compile: bool, fuse: bool = False, document_kernel: str = "flash", own_kernel: str = "masked"
    ):
        if document_kernel not in KERNELS:
            raise ValueError(f"document_kernel {document_kernel!r}: expected one of {KERNELS}")
        if own_kernel not in OWN_KERNELS:
            raise ValueError(f"own_kernel {own_kernel!r}: expected one of {OWN_KERNELS}")
        self.model = model
        self.base = model.model
        self.attn_impl = register()
        self.compiled, self.fused, self.document_kernel, self.own_kernel = compile, fuse, document_kernel, own_kernel
        layers = list(self.base.layers[: model.config.num_hidden_layers])
        if fuse:
            layers = [FusedLayer(layer) for layer in layers]
        self.layers = [compiled_layer(layer) for layer in layers] if compile else layers
        self.fused_weight_bytes = fused_bytes(self.layers)

    def eager(self) -> FastForward:
        """This forward uncompiled, sharing its layers (and their fused weight copies, made once)."""
        twin = copy.copy(self)
        twin.layers, twin.compiled = [getattr(layer, "_orig_mod", layer) for layer in self.layers], False
        return twin

    def reader_cache(self, document: KVArtifact, batch: int, capacity: int) -> ReaderCache:
        """An empty :class:`ReaderCache` for ``batch`` readers of ``capacity`` slots, with this forward's
        own-cache kernel (``auto``: the faster for the shape, timed here once) and its layout."""
        if self.own_kernel != "auto":
            return ReaderCache.empty(document, batch, capacity, self.own_kernel)
        heads = self.model.config.num_attention_heads
        return ReaderCache.empty(document, batch, capacity, *own_pass.choose(batch, heads, document.keys[0], capacity))

    def _layer(self, i: int, hidden: torch.Tensor, positions: torch.Tensor, rotary, **kwargs) -> torch.Tensor:
        """Layer ``i`` on ``hidden`` ``(B, T, hidden)``; ``kwargs`` go to the attention function."""
        if self.fused:
            return self.layers[i](hidden, rotary, kvbench_attention, **kwargs)
        return self.layers[i](hidden, attention_mask=None, position_ids=positions, position_embeddings=rotary, **kwargs)

    @contextmanager
    def _attention(self):
        """The model's attention implementation set to kvbench's for the duration (shared config)."""
        config = self.model.config
        before = config._attn_implementation
        config._attn_implementation = self.attn_impl
        try:
            yield
        finally:
            config._attn_implementation = before

    @torch.inference_mode()
    def __call__(
        self, ids: torch.Tensor, prefix: KVArtifact | None = None, cache: ReaderCache | None = None
    ) -> torch.Tensor:
        """Forward ``ids`` ``(B, T)`` at positions ``L .. L+T-1`` after ``prefix`` (``L`` tokens, or none).

        ``prefix`` holds per layer ``(1, kv_heads, L, head_dim)`` keys and values, shared by
        all B rows and read where they are (or ``(B, ...)``, a copy per row). With ``cache``
        (needs ``prefix``), each row also sees its own earlier tokens there: the new tokens sit
        at ``L + cache.length ..`` and their KV is written into ``cache`` (not advanced).
        Returns ``(B, vocab)`` float32 last-position logits.
        """
        last = self.base.norm(self._layers(ids, prefix, cache, None)[:, -1:])
        return self.model.lm_head(last)[:, -1].float()

    @torch.inference_mode()
    def recompute(self, ids: torch.Tensor, document: KVArtifact, chunks: Chunks) -> None:
        """Forward an audit's chunks side by side and write their KV into ``chunks``.

        ``ids`` ``(1, n * tokens)`` are the chunks' tokens, chunk ``i`` at its own positions
        (``chunks.starts[i] ..``), seeing ``document``'s KV (the whole document) before it and
        itself. No logits: an audit compares KV, so the final norm and the head (a vocab x hidden
        read) are left out.
        """
        self._layers(ids, document, None, chunks)

    def _layers(
        self, ids: torch.Tensor, prefix: KVArtifact | None, cache: ReaderCache | None, chunks: Chunks | None
    ) -> torch.Tensor:
        """The decoder layers on ``ids`` ``(B, T)`` (see :meth:`__call__` and :meth:`recompute`):
        ``(B, T, hidden)`` hidden states before the final norm."""
        batch, tokens = ids.shape
        start = 0 if prefix is None else prefix.num_tokens
        offsets = torch.arange(tokens, device=ids.device)
        if cache is not None:
            offsets = offsets + cache.length  # (T,): the new tokens' slots in each reader's cache
        positions = (start + offsets).unsqueeze(0).expand(batch, tokens)
        if chunks is not None:
            positions = chunks.positions()
        # the variable-length passes' index, built here once for every layer (kvbench.forward.varlen)
        steps = sequences = None
        chunk_kernel, kernel = "varlen", self.document_kernel
        if prefix is not None:
            groups = self.model.config.num_attention_heads // prefix.keys[0].shape[1]  # query heads per KV head
            if cache is not None and cache.kernel == "flash" and tokens == 1:  # questions take the masked pass
                steps = own_pass.step_sequences(batch, groups, cache.keys[0].shape[2], cache.length)
            if chunks is not None:
                chunk_kernel, splits = chunk_plan(chunks.starts.shape[0], groups, chunks.tokens, prefix.keys[0])
                sequences = chunk_sequences(chunks.starts, groups, chunks.tokens, start, splits)
            if chunks is None and kernel == "auto":  # two passes or one launch (kvbench.forward.reuse_plan)
                if cache is None:
                    kernel = reuse_plan(batch, tokens, groups, prefix.keys[0])
                else:
                    kernel = cached_plan(batch, tokens, groups, cache.keys[0], cache.kernel, prefix.keys[0])
        with self._attention():
            hidden = self.base.embed_tokens(ids)
            rotary = self.base.rotary_emb(hidden, positions)
            for i in range(len(self.layers)):
                kwargs: dict[str, object] = {"kvbench_kernel": kernel}
                if prefix is not None:
                    kwargs["kvbench_prefix"] = (prefix.keys[i], prefix.values[i])
                if cache is not None:
                    kwargs["kvbench_own"] = (cache.keys[i], cache.values[i], offsets, cache.kernel, steps)
                if chunks is not None:
                    layer_chunks = (chunks.keys[i], chunks.values[i])
                    kwargs["kvbench_chunks"] = (sequences, chunk_kernel, chunks.tokens, *layer_chunks)
                hidden = self._layer(i, hidden, positions, rotary, **kwargs)
            return hidden


@torch.inference_mode()
def greedy_continue_fast(
    fwd: FastForward, prefix: KVArtifact, query_ids: torch.Tensor, first_logits: torch.Tensor, steps: int
) -> list[int]:
    """Greedy tokens after a fast reuse: the argmax of ``first_logits`` ``(1, vocab)``, then ``steps - 1`` more.

    Incremental, as a serving reader decodes: the question ``(1, Q)`` is written once into a
    :class:`ReaderCache` of its own beside the document's KV (``prefix``, read in place), then
    each step forwards one token ``(1, 1)`` on both. Re-running the question and the tokens so
    far at every step would cost ``O(steps^2)`` token forwards instead of ``Q + steps``.
    ``first_logits`` are the reader's own answer (the timed forward, no cache): the first token
    comes from them, not from the cached forward of the question, whose logits are discarded.
    """
    tokens = [int(first_logits.argmax(dim=-1))]
    if steps <= 1:
        return tokens
    question = query_ids.shape[1]
    cache = fwd.reader_cache(prefix, 1, question + steps - 1)
    fwd(query_ids, prefix, cache)  # only to fill the cache with the question's KV
    cache.advance(question)
    step = torch.empty(1, 1, dtype=torch.long, device=query_ids.device)
    for _ in range(steps - 1):
        step.fill_(tokens[-1])
        tokens.append(int(fwd(step, prefix, cache).argmax(dim=-1)))
        cache.advance(1)
    return tokens


class GreedyDecoder:
    """B readers of one document: each answers its question, then decodes greedily on its own cache.

    Parameters
    ----------
    fwd : FastForward
    prefix : KVArtifact
        The document's KV, ``(1, kv_heads, L, head_dim)`` per layer shared by the readers, or
        ``(B, ...)`` a copy per reader.
    batch, question_tokens : int
        B readers, each with a question of ``question_tokens`` tokens.
    steps : int
        Decode steps per reader after its question (the cache holds ``question_tokens + steps``).
    graph : bool
        Capture the decode step ``(B, 1)`` ids -> ``(B, vocab)`` logits as a CUDA graph.
    """

    def __init__(
        self, fwd: FastForward, prefix: KVArtifact, batch: int, question_tokens: int, steps: int, *, graph: bool
    ):
        self.fwd, self.prefix, self.steps = fwd, prefix, steps
        self.cache = cache = fwd.reader_cache(prefix, batch, question_tokens + steps)
        example = torch.zeros(batch, 1, dtype=torch.long, device=cache.length.device)
        # captured on the empty cache: the warmup writes land in slot 0, which every question overwrites.
        # The step closes over the cache, not self: no cycle, so the graph goes with its decoder.
        self.step = Replayable(lambda x: fwd(x, prefix, cache), example, graph=graph)

    def logits(self, ids: torch.Tensor) -> Iterator[torch.Tensor]:
        """``(B, vocab)`` float32 logits of the questions ``ids`` ``(B, Q)``, then of each greedy decode step.

        ``steps + 1`` in all; each decode step reads the argmax of the previous logits. On
        CUDA a step's logits are the graph's output, overwritten by the next step (clone to keep).
        """
        self.cache.rewind(0)
        logits = self.fwd(ids, self.prefix, self.cache)
        self.cache.advance(ids.shape[1])
        for _ in range(self.steps):
            yield logits
            logits = self.step(logits.argmax(dim=-1, keepdim=True))
            self.cache.advance(1)
        yield logits

    def tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """``(B, steps + 1)`` greedy tokens of each reader: its answer's first token, then one per step."""
        return torch.stack([logits.argmax(dim=-1) for logits in self.logits(ids)], dim=1)
