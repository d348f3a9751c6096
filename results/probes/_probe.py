"""What the two H200 probe scripts share: the device, a printed record of each number, the
median of CUDA-event timings, the measured ceilings, the random-weight Qwen3-4B shape, and
writing the record to $OUT. Run from the repository root (``python3 scripts/probe_*.py``)."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.getcwd())
from kvbench.model.architectures import build_config  # noqa: E402
from kvbench.measure.calibrate import calibrate  # noqa: E402
from kvbench.measure.timing import time_ms  # noqa: E402

dev, dt = torch.device("cuda"), torch.bfloat16
record: dict = {}


def say(key: str, value) -> None:
    record[key] = value
    print(f"{key}: {value}", flush=True)


def med(fn, warmup: int = 3, repeats: int = 20) -> float:
    return float(np.median(time_ms(fn, dev, warmup=warmup, repeats=repeats)))


def ceilings():
    return calibrate(dev, dt)


def qwen3_4b_random():
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(dev):
        return AutoModelForCausalLM.from_config(build_config("qwen3-4b"), dtype=dt, attn_implementation="sdpa").eval()


def document_kv(model, tokens: int, query: torch.Tensor):
    """A random document of ``tokens`` ids, its KV (HF prefill) and HF's reuse logits for ``query``."""
    from kvbench.kv.artifact import KVArtifact

    doc = torch.randint(0, 30000, (1, tokens), device=dev)
    with torch.inference_mode():
        pre = model(input_ids=doc, use_cache=True, logits_to_keep=1)
        art = KVArtifact.from_cache(pre.past_key_values, model_fingerprint="", tokenizer_hash="", token_ids=doc)
        ref = model(input_ids=query, past_key_values=art.to_cache(model.config), use_cache=True,
                    logits_to_keep=1).logits[:, -1].float()
    return doc, art, ref


def save(name: str) -> None:
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], name), "w") as f:
            json.dump(record, f, indent=1)
