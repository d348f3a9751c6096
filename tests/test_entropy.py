"""Entropy bounds on distributions whose entropy is known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kvbench.kv.artifact import KVArtifact
from kvbench.measure.entropy import conditional_entropy, entropy_from_counts, kv_entropy


def test_entropy_of_known_histograms():
    assert entropy_from_counts(np.array([5, 0, 0])) == 0.0
    assert entropy_from_counts(np.array([3, 3])) == pytest.approx(1.0)
    assert entropy_from_counts(np.array([1, 1, 1, 1, 0])) == pytest.approx(2.0)
    assert entropy_from_counts(np.array([1, 3])) == pytest.approx(-(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75)))


def test_conditional_entropy_drops_when_context_decides():
    context = np.repeat(np.arange(4), 100)
    assert conditional_entropy(context, context * 7, 65536) == pytest.approx(0.0)
    noise = np.random.default_rng(0).integers(0, 2, 400)
    assert conditional_entropy(context, context * 7 + noise, 65536) == pytest.approx(1.0, abs=0.02)
    # a huge joint alphabet takes the sparse path and gives the same answer
    assert conditional_entropy(context, (context * 7 + noise) << 20, 1 << 40) == pytest.approx(
        conditional_entropy(context, context * 7 + noise, 65536)
    )


def _artifact(keys: torch.Tensor, values: torch.Tensor) -> KVArtifact:
    return KVArtifact([keys], [values], {"num_layers": "1"})


def test_channel_bound_sees_per_channel_constants():
    """Each channel holds one constant value: order-0 sees 4 symbols (2 bits), channel entropy is 0."""
    channel_values = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.bfloat16)
    keys = channel_values.expand(1, 2, 64, 4).contiguous()
    bounds = kv_entropy(_artifact(keys, keys.clone()))
    assert bounds.value_bits == 16
    assert bounds.order0 == pytest.approx(2.0)
    assert bounds.channel == pytest.approx(0.0)
    assert bounds.planes >= bounds.order0 - 1e-9  # planes coded independently cannot do better
    assert bounds.ratios()["order0"] == pytest.approx(8.0)


def test_bounds_of_random_bits_are_near_one():
    bits = torch.randint(
        -(2**15), 2**15, (1, 2, 4096, 16), dtype=torch.int16, generator=torch.Generator().manual_seed(0)
    )
    bounds = kv_entropy(_artifact(bits.view(torch.float16), bits.flip(2).view(torch.float16)))
    # 262144 samples of a 65536-symbol uniform source: order-0 a little under 16 bits
    assert 14.5 < bounds.order0 <= 16 and bounds.planes == pytest.approx(16, abs=0.01)
    assert bounds.ratios()["planes"] == pytest.approx(1.0, abs=0.01)


def test_float32_uses_32_bit_symbols():
    x = torch.tensor([0.5, 1.5], dtype=torch.float32).repeat(64).view(1, 1, 32, 4)
    bounds = kv_entropy(_artifact(x, x.clone()))
    assert bounds.value_bits == 32 and bounds.order0 == pytest.approx(1.0)


def _alternating(layers: int = 2, tokens: int = 2048) -> KVArtifact:
    """Every channel alternates 1.0, 4.0, 1.0, ... over tokens (two exponents, one low byte);
    the layers are equal."""
    pattern = torch.tensor([1.0, 4.0], dtype=torch.bfloat16).repeat(tokens // 2)
    t = pattern.view(1, 1, tokens, 1).expand(1, 2, tokens, 8).contiguous()
    return KVArtifact([t.clone() for _ in range(layers)], [t.clone() for _ in range(layers)], {})


def test_context_entropy_sees_the_previous_token_and_layer():
    from kvbench.measure.entropy import context_entropy

    bits = context_entropy(_alternating())
    assert bits["channel_planes"] == pytest.approx(1.0, abs=0.01)  # one bit: which exponent
    assert bits["prev_token"] == pytest.approx(0.0, abs=0.01)  # the previous token decides it
    assert bits["prev_layer"] == pytest.approx(0.5, abs=0.01)  # decided in layer 1, not in layer 0
    # the factored channel entropy is the channel entropy (chain rule), up to the correction
    assert bits["channel_planes"] == pytest.approx(kv_entropy(_alternating()).channel, abs=0.01)
    with pytest.raises(ValueError, match="16-bit"):
        context_entropy(KVArtifact([torch.zeros(1, 1, 4, 2)], [torch.zeros(1, 1, 4, 2)], {}))


def test_miller_madow_corrects_the_plugin_estimate_upwards():
    rng = np.random.default_rng(0)
    context, symbols = rng.integers(0, 64, 4000), rng.integers(0, 16, 4000)  # true H = 4 bits
    plugin = conditional_entropy(context, symbols, 16)
    corrected = conditional_entropy(context, symbols, 16, miller_madow=True)
    assert plugin < corrected and abs(corrected - 4.0) < abs(plugin - 4.0)


@pytest.mark.parametrize("op", ["delta", "xor"])
def test_predictive_residuals_invert_with_wraparound(op):
    from kvbench.codecs.predictive import residuals, restore

    bits = np.random.default_rng(1).integers(0, 2**16, (2, 3, 50, 4)).astype(np.uint16)
    bits[0, 0, :, 0] = [0, 65535] * 25  # deltas that wrap both ways
    assert np.array_equal(restore(residuals(bits, op), op), bits)


@pytest.mark.parametrize("name", ["delta-planes-zstd", "xor-planes-zstd"])
def test_predictive_codecs_round_trip_and_gain_on_smooth_kv(name):
    from kvbench.codecs import get_codec

    steps = torch.linspace(0, 1, 4096).view(1, 1, 4096, 1) + torch.arange(8).view(1, 1, 1, 8)
    smooth = steps.expand(1, 2, 4096, 8).to(torch.float16).contiguous()
    artifact = KVArtifact([smooth], [smooth.clone()], {"num_layers": "1"})
    codec, planes = get_codec(name), get_codec("planes-zstd")
    blob = codec.encode(artifact)
    assert codec.decode(blob).equals(artifact)
    assert len(blob) < len(planes.encode(artifact))  # neighbouring tokens predict each other
