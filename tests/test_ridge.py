"""The torch-free floor model of hardware not at hand agrees with kvbench's own."""

from __future__ import annotations

import pytest

from kvbench.config.catalog import ARCHITECTURES
from kvbench.config.shape_math import shape
from kvbench.economics.ridge import M1_PRO, DeviceSpec, floors_ms
from kvbench.measure import flops
from kvbench.model.architectures import build_config


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize(("new", "cached"), [(255, 0), (3806, 0), (32, 3774), (1, 32768)])
def test_a_catalogue_shape_counts_what_its_transformers_config_counts(arch, new, cached):
    spec, config = shape(ARCHITECTURES[arch]), build_config(arch)
    assert flops.forward_flops(spec, new, cached) == flops.forward_flops(config, new, cached)
    assert flops.kv_bytes(spec, 4096, 2) == flops.kv_bytes(config, 4096, 2)


def test_floors_follow_the_ridge_point():
    shape = ARCHITECTURES["qwen3-4b"]
    weights = 8_044_936_192  # the sweep's Qwen3-4B-shape weight bytes (bf16)
    short, long = (floors_ms(shape, M1_PRO, n, 32, weights) for n in (255, 3774))
    assert M1_PRO.ridge == pytest.approx(26.0)
    # a 32-token question is past the M1 Pro's ridge (26 FLOP/B): compute-bound, so the floor
    # ratio is about (L + Q) / Q
    assert short["reuse_bound"] == long["reuse_bound"] == "compute"
    assert short["prefill_floor_ms"] / short["reuse_floor_ms"] == pytest.approx(287 / 32, rel=0.1)
    # on a device with a high ridge the same question is bound by the weights' bytes
    wide = DeviceSpec("wide", peak_tflops=770.0, memory_gbps=4258.0, sources=())
    assert floors_ms(shape, wide, 3774, 32, weights)["reuse_bound"] == "memory"
