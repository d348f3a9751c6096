"""The roofline floors of hardware not at hand, from its public specifications.

The reference paper measured one laptop (Apple M1 Pro). No laptop runs here, so its floors
come from kvbench's floor model (:mod:`kvbench.measure.floors`) fed with the laptop's
published peak and bandwidth instead of a calibration: a prefill's floor is its FLOPs at
peak (or one read of the weights, if longer); a reuse's is one read of the weights and the
document's KV, or the question's FLOPs at peak, if longer. The FLOPs and KV bytes are the ones
the measured floors count (:mod:`kvbench.config.shape_math`).

Where a device's ridge point (peak FLOP/s over bytes/s) lies decides the ratio of the two
floors: a question shorter than the ridge (in tokens per weight byte read) is bound by the
weights' bytes, so its reuse costs what a prefill of about ``ridge`` tokens costs in FLOPs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kvbench.config.shape_math import forward_flops, kv_bytes, shape


@dataclass(frozen=True)
class DeviceSpec:
    """A device's published ceilings and where they are published."""

    name: str
    peak_tflops: float  # dense fp16 FLOP/s, 1e12
    memory_gbps: float  # memory bandwidth, 1e9 B/s
    sources: tuple[str, ...]

    @property
    def ridge(self) -> float:
        """FLOPs per byte read at which compute and memory take equally long."""
        return self.peak_tflops * 1e12 / (self.memory_gbps * 1e9)


# Apple, "Introducing M1 Pro and M1 Max" (newsroom, 2021-10-18): up to 200 GB/s of unified
# memory bandwidth and a 16-core GPU; Apple's event (same day) gave 5.2 TFLOPS for that GPU
# (fp32; Apple's GPUs of this generation run fp16 at the fp32 rate). Secondary sources
# carry the TFLOPS figure; see the paper's bibliography.
M1_PRO = DeviceSpec(
    name="Apple M1 Pro (16-core GPU)",
    peak_tflops=5.2,
    memory_gbps=200.0,
    sources=(
        "https://www.apple.com/newsroom/2021/10/introducing-m1-pro-and-m1-max-the-most-powerful-chips-apple-has-ever-built/",
    ),
)


def floors_ms(
    spec: Mapping, device: DeviceSpec, doc_tokens: int, query_tokens: int, weight_bytes: int, itemsize: int = 2
) -> dict[str, float | str]:
    """Prefill (document + question in one pass) and reuse (the question on the cached document)
    floors on ``device`` for the architecture ``spec`` (a :data:`kvbench.config.catalog.ARCHITECTURES`
    entry), ms, and which bound sets each (``compute`` or ``memory``)."""
    config = shape(spec)
    peak, bandwidth = device.peak_tflops * 1e12, device.memory_gbps * 1e9
    prefill_compute = forward_flops(config, doc_tokens + query_tokens) / peak
    reuse_compute = forward_flops(config, query_tokens, cached_tokens=doc_tokens) / peak
    reuse_memory = (weight_bytes + kv_bytes(config, doc_tokens, itemsize)) / bandwidth
    prefill_memory = weight_bytes / bandwidth
    return dict(
        prefill_floor_ms=max(prefill_compute, prefill_memory) * 1e3,
        reuse_floor_ms=max(reuse_compute, reuse_memory) * 1e3,
        prefill_bound="compute" if prefill_compute >= prefill_memory else "memory",
        reuse_bound="compute" if reuse_compute >= reuse_memory else "memory",
    )
