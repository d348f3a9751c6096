"""Experiment ``compress``: codec ratios beside entropy estimates, codec speed, and lossy cost.

Per point (model, dtype, L, codec), on the KV of the first document of length L:

* ratio = kv_bytes / blob bytes, with the artifact's order-0 and context entropies
  (:mod:`kvbench.measure.entropy`, computed once per L) beside it;
* encode and decode GB/s over ``timing.repeats`` (CUDA events when the codec runs on the
  GPU, perf_counter otherwise): host codecs from host KV to host blob and back; device
  codecs from KV on the GPU to the host blob and back to KV on the GPU, and separately
  their on-device work alone;
* a bitwise round-trip check (a lossless codec that fails it fails the point);
* for lossy codecs, over ``exactness.num_docs`` documents: the foundation's exactness
  metrics and the continuation NLL with exact vs lossy KV
  (:mod:`kvbench.experiments.compress_quality`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from kvbench.codecs import CODECS, container, get_codec, unavailable
from kvbench.experiments.base import RunContext
from kvbench.experiments.compress_quality import Passage, lossy_quality, relative_rmse
from kvbench.forward import inference
from kvbench.kv.artifact import KVArtifact
from kvbench.measure.entropy import context_entropy, kv_entropy
from kvbench.measure.timing import gbps, time_ms, timer_name
from kvbench.model.corpus import corpus_hash, token_ids_sha256


def _gbps(nbytes: int, samples) -> float | None:
    """``nbytes`` over the median of timing samples (ms), GB/s."""
    return gbps(nbytes, float(np.median(samples)))


class CompressExperiment:
    name = "compress"

    def __init__(self):
        self._shared: tuple[int, dict[str, Any]] | None = None  # (L, what one L's codec points share)

    def points(self, ctx: RunContext) -> list[dict[str, Any]]:
        return [
            {"doc_tokens": int(n), "codec": name}
            for n in ctx.settings.doc_tokens
            for name in ctx.settings.compress.codecs
        ]

    def shared(self, ctx: RunContext, doc_tokens: int) -> dict[str, Any]:
        """Passages, the first document's artifact (device and host copies) and its bounds, cached per L."""
        if self._shared is not None and self._shared[0] == doc_tokens:
            return self._shared[1]
        self._shared = None  # free the previous length's KV before building this one
        settings, move = ctx.settings, (lambda t: t.to(ctx.device))
        num_docs = settings.exactness.num_docs if settings.exactness.enabled else 1
        docs = ctx.corpus.documents(doc_tokens + settings.compress.loss_tokens, num_docs)
        passages = [
            Passage(move(d.doc_ids[:, :doc_tokens]), move(d.query_ids), move(d.doc_ids[:, doc_tokens:])) for d in docs
        ]
        _, cache = inference.prefill(ctx.lm.model, passages[0].doc_ids)
        artifact = ctx.snapshot(cache, passages[0].doc_ids)
        del cache
        host = artifact.to("cpu")
        bounds = kv_entropy(host)
        context = context_entropy(host) if host.keys[0].element_size() == 2 else {}
        hashes = [token_ids_sha256(p.doc_ids)[:16] for p in passages]
        shared = dict(
            passages=passages,
            artifact=artifact,
            host=host,
            hashes=hashes,
            fields=dict(
                doc_hash=hashes[0],
                query_tokens=int(passages[0].query_ids.shape[1]),
                kv_bytes=artifact.nbytes,
                corpus_hash=corpus_hash(hashes),
                entropy_order0_bits=bounds.order0,
                entropy_planes_bits=bounds.planes,
                entropy_channel_bits=bounds.channel,
                **{f"bound_{k}_ratio": v for k, v in bounds.ratios().items()},
                **{f"entropy_{k}_bits": v for k, v in context.items()},
            ),
        )
        self._shared = (doc_tokens, shared)
        return shared

    def run_point(self, ctx: RunContext, point: dict[str, Any]) -> dict[str, Any]:
        name, doc_tokens = point["codec"], point["doc_tokens"]
        why = unavailable(name)
        if why:
            return dict(status="skipped", reason=why)
        spec, codec, shared = CODECS[name], get_codec(name), self.shared(ctx, doc_tokens)
        limit = ctx.settings.compress.codec_max_mb.get(name)
        if limit is not None and shared["artifact"].nbytes > limit * 2**20:
            return dict(
                status="skipped",
                reason=f"{name} is measured on KV up to {limit} MiB "
                f"(compress.codec_max_mb); this KV is {shared['artifact'].nbytes / 2**20:.0f} MiB",
            )
        # a device codec runs where the model runs; a host codec starts from host KV (the tier
        # path times the device-to-host copy, not the codec)
        where = ctx.device if spec.device == "cuda" else torch.device("cpu")
        source = shared["artifact"] if where == ctx.device else shared["host"]
        blob = codec.encode(source)
        decoded = codec.decode(blob, where)
        bitwise = source.equals(decoded)
        if spec.lossless and not bitwise:
            raise RuntimeError(f"lossless codec {name} did not round-trip bitwise")
        row = dict(
            shared["fields"],
            codec_lossless=spec.lossless,
            codec_device=where.type,
            compressed_bytes=len(blob),
            compress_ratio=source.nbytes / len(blob),
            roundtrip_bitwise=bitwise,
            kv_rel_rmse=relative_rmse(source, decoded),
        )
        row.update(self.speed(ctx, codec, source, blob, where))
        if not spec.lossless:
            ex = ctx.settings.exactness
            row.update(
                lossy_quality(
                    ctx.lm.model,
                    shared["passages"],
                    ctx.snapshot,
                    lambda artifact: codec.decode(codec.encode(artifact), ctx.device),
                    ex.gen_tokens if ex.enabled else None,
                ),
                loss_tokens=ctx.settings.compress.loss_tokens,
            )
        return row

    @staticmethod
    def speed(
        ctx: RunContext, codec, source: KVArtifact, blob: bytes | bytearray, where: torch.device
    ) -> dict[str, Any]:
        """Encode/decode GB/s; for device codecs also the on-device compress/decompress alone."""
        timing, n = ctx.settings.timing, source.nbytes
        run = dict(warmup=timing.warmup, repeats=timing.repeats)
        fields = dict(
            repeats=timing.repeats,
            timer=timer_name(where),
            encode_gbps=_gbps(n, time_ms(lambda: codec.encode(source), where, **run)),
            decode_gbps=_gbps(n, time_ms(lambda: codec.decode(blob, where), where, **run)),
        )
        if isinstance(codec, container.DeviceCodec):
            header, (payload,) = container.unpack(blob, codec.name)
            payload = container.upload(payload, where)
            fields["encode_device_gbps"] = _gbps(n, time_ms(lambda: codec.compress_device(source), where, **run))
            fields["decode_device_gbps"] = _gbps(
                n, time_ms(lambda: codec.decompress_device(header, payload, where), where, **run)
            )
        return fields
