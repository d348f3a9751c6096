"""The roofline floors of hardware not at hand, from its public specifications.

The reference paper measured one laptop (Apple M1 Pro). No laptop runs here, so its floors
come from kvbench's floor model (:mod:`kvbench.measure.floors`) fed with the laptop's
published peak and bandwidth instead of a calibration: a prefill's floor is its FLOPs at
peak (or one read of the weights, if longer); a reuse's is one read of the weights and the
document's KV, or the question's FLOPs at peak, if longer. The FLOPs are
:func:`kvbench.measure.flops.forward_flops` written again without torch (the report may not
import ``kvbench.measure``); ``tests/test_ridge.py`` holds the two equal.

Where a device's ridge point (peak FLOP/s over bytes/s) lies decides the ratio of the two
floors: a question shorter than the ridge (in tokens per weight byte read) is bound by the
weights' bytes, so its reuse costs what a prefill of about ``ridge`` tokens costs in FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass


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


def forward_flops(shape: dict, new_tokens: int, cached_tokens: int = 0) -> float:
    """FLOPs of one forward of ``new_tokens`` after ``cached_tokens``, for an architecture
    ``shape`` (:data:`kvbench.config.catalog.ARCHITECTURES`): projections, MLP, causal
    attention and the LM head for one position, as :func:`kvbench.measure.flops.forward_flops`."""
    layers, hidden = shape["num_hidden_layers"], shape["hidden_size"]
    heads = shape["num_attention_heads"]
    kv_heads = shape.get("num_key_value_heads") or heads
    head_dim = shape.get("head_dim") or hidden // heads
    linear = 2.0 * layers * (hidden * head_dim * (2 * heads + 2 * kv_heads) + 3 * hidden * shape["intermediate_size"])
    keys_attended = new_tokens * cached_tokens + new_tokens * (new_tokens + 1) / 2
    attention = 2.0 * 2 * layers * heads * head_dim * keys_attended
    return linear * new_tokens + attention + 2.0 * hidden * shape["vocab_size"]


def kv_bytes_per_token(shape: dict, itemsize: int) -> int:
    """Bytes of keys and values per token: 2 x layers x kv_heads x head_dim x itemsize."""
    heads = shape["num_attention_heads"]
    head_dim = shape.get("head_dim") or shape["hidden_size"] // heads
    return 2 * shape["num_hidden_layers"] * (shape.get("num_key_value_heads") or heads) * head_dim * itemsize


def floors_ms(
    shape: dict, device: DeviceSpec, doc_tokens: int, query_tokens: int, weight_bytes: int, itemsize: int = 2
) -> dict[str, float | str]:
    """Prefill (document + question in one pass) and reuse (the question on the cached document)
    floors on ``device``, ms, and which bound sets each (``compute`` or ``memory``)."""
    peak, bandwidth = device.peak_tflops * 1e12, device.memory_gbps * 1e9
    prefill_compute = forward_flops(shape, doc_tokens + query_tokens) / peak
    reuse_compute = forward_flops(shape, query_tokens, cached_tokens=doc_tokens) / peak
    reuse_memory = (weight_bytes + kv_bytes_per_token(shape, itemsize) * doc_tokens) / bandwidth
    prefill_memory = weight_bytes / bandwidth
    return dict(
        prefill_floor_ms=max(prefill_compute, prefill_memory) * 1e3,
        reuse_floor_ms=max(reuse_compute, reuse_memory) * 1e3,
        prefill_bound="compute" if prefill_compute >= prefill_memory else "memory",
        reuse_bound="compute" if reuse_compute >= reuse_memory else "memory",
    )
