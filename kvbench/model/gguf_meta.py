"""What a GGUF file says besides its weights (its tokenizer, its context length), converted once per machine.

transformers converts a GGUF's tokenizer, and ``gguf`` reads its metadata, in Python: ~6 s and
~2 s for SmolLM2's 49k-entry vocabulary on a 2-core CPU, in every process. Both are kept under
``~/.cache/kvbench/gguf/<the file's SHA-256>/`` (the tokenizer as transformers saves it, the
context length as text) and read back in a fraction of a second. The key is the file's hash, so
another file never reads them; a cache entry is written to a temporary folder and renamed into
place, so a killed or concurrent run never leaves half of one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from kvbench.model.files import file_sha256

CACHE = Path("~/.cache/kvbench/gguf")


def _entry(path: Path) -> Path:
    return CACHE.expanduser() / file_sha256(path)


def _publish(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` into ``final`` (another process may have got there first: then keep theirs)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def gguf_tokenizer(path: Path):
    """The GGUF file's tokenizer (a transformers tokenizer), converted on first use and cached."""
    from transformers import AutoTokenizer

    folder = _entry(path) / "tokenizer"
    if folder.is_dir():
        return AutoTokenizer.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    tmp = folder.with_name(f".tokenizer.{os.getpid()}.tmp")
    tokenizer.save_pretrained(tmp)
    _publish(tmp, folder)
    return tokenizer


def gguf_context(path: Path) -> int:
    """The model's context length (``<arch>.context_length``) from the GGUF's metadata, cached."""
    cached = _entry(path) / "context_length"
    if cached.is_file():
        return int(cached.read_text())
    from gguf import GGUFReader

    reader = GGUFReader(path)
    field = next((f for name, f in reader.fields.items() if name.endswith(".context_length")), None)
    if field is None:
        raise ValueError("no *.context_length field in its metadata")
    context = int(field.parts[field.data[0]][0])
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f".context_length.{os.getpid()}.tmp")
    tmp.write_text(str(context))
    os.replace(tmp, cached)
    return context
