"""The allowed values of the config's enumerated keys, in one place both schemas read."""

from __future__ import annotations

import re

DTYPES = ("float32", "bfloat16", "float16")
ATTN_IMPLS = ("sdpa", "eager")
MODEL_SOURCES = ("embedded", "hub", "random", "gguf")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
CORPUS_SOURCES = ("pydoc", "hub")
LOGGERS = ("none", "wandb")
WANDB_MODES = ("offline", "online", "disabled")
EXPERIMENTS = ("reuse", "tiers", "compress", "throughput", "economics", "audit")
READERS = ("fast", "graph", "hf")  # how a reader runs its question on the KV (kvbench.forward.readers)
# the fast reader's document pass (kvbench.forward.document_pass)
DOCUMENT_KERNELS = ("auto", "flash", "flex", "cudnn", "triton")
OWN_KERNELS = ("auto", "masked", "flash", "triton")  # a decoding reader's own-KV pass (kvbench.forward.own_pass)
AUDIT_FORWARDS = ("fast", "hf")  # how an audit recomputes its chunks (kvbench.audit.recompute)
TIERS = ("gpu", "host", "disk", "redis", "wan")
DISK_CACHE_STATES = ("cold", "warm")
TIER_IO = ("stream", "serial")  # how a stored object is read (kvbench.tiers.stream)
