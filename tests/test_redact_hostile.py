"""Redaction that cannot be sidestepped (#23, item 2): Hydra's escaped overrides, TLS and other
secret-named URL options, Hydra's own job-failure line, and a real multirun that writes the
password nowhere: no file, no folder name, no console line."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kvbench.rows.redact import RedactingStream, redact
from kvbench.run.folder_names import run_dirname, split_overrides

ROOT = Path(__file__).resolve().parents[1]
SECRET = "hunter2"


@pytest.mark.parametrize(
    "text, clean",
    [
        # Hydra escapes ':' '=' ',' in the overrides it writes (folder names, multirun.yaml, "#0 : ..." lines)
        (r"tier.url=redis\://\:hunter2@127.0.0.1\:6379/0", r"tier.url=redis\://***@127.0.0.1\:6379/0"),
        (r"tier.url=redis\://kv\:hun\,ter2@h/0,tier=redis", r"tier.url=redis\://***@h/0,tier=redis"),
        # Hydra's "Error executing job with overrides: [...]" is a Python list repr: backslashes doubled
        (r"['tier.url=redis\\://\\:hunter2@h\\:1/0']", r"['tier.url=redis\\://***@h\\:1/0']"),
        ("rediss://h:6380/0?ssl_password=hunter2", "rediss://h:6380/0?ssl_password=***"),
        ("redis://h/0?db=1&ssl_password=hunter2&ssl=1", "redis://h/0?db=1&ssl_password=***&ssl=1"),
        (r"rediss\://h\:6380/0?ssl_password\=hunter2", r"rediss\://h\:6380/0?ssl_password\=***"),
        (r"['x?ssl_password\\=hunter2']", r"['x?ssl_password\\=***']"),
        ("tier.url='rediss://h/0?ssl_password=hunter2'", "tier.url='rediss://h/0?ssl_password=***'"),
        (
            "h/0?api_key=hunter2&Access_Token=hunter2&client_secret=hunter2",
            "h/0?api_key=***&Access_Token=***&client_secret=***",
        ),
        ("url: redis://:hunter2@h/0?ssl_keyfile_password=hunter2", "url: redis://***@h/0?ssl_keyfile_password=***"),
    ],
)
def test_redact_the_forms_hydra_and_redis_py_write(text, clean):
    assert redact(text) == clean and SECRET not in redact(text)


def test_folder_names_redact_each_override_alone():
    escaped = r"seed=1,tier.url=rediss\://h\:1/0?ssl_password\=hunter2,tier=redis"
    quoted = "seed=1,tier.url='rediss://h:1/0?ssl_password=hun,ter2',tier=redis"
    for name in (escaped, quoted, r"tier.url=redis\://\:hunter2@h\:1/0,tier=redis"):
        assert SECRET not in run_dirname(name) and "hun" not in run_dirname(name) and "/" not in run_dirname(name)
    # a secret's value never swallows the overrides after it: runs that differ there keep their own folders
    assert run_dirname(escaped) != run_dirname(escaped.replace("tier=redis", "tier=wan"))
    assert split_overrides(quoted) == ["seed=1", "tier.url='rediss://h:1/0?ssl_password=hun,ter2'", "tier=redis"]
    assert split_overrides(r"a=x\,y,b=[1,2]") == [r"a=x\,y", "b=[1", "2]"]


def test_the_console_stream_redacts_a_secret_split_across_writes():
    out = io.StringIO()
    stream = RedactingStream(out)
    stream.write("Error executing job with overrides: ['tier.url=redis://:hun")
    stream.write("ter2@h/0']\nprogress ")
    assert out.getvalue() == "Error executing job with overrides: ['tier.url=redis://***@h/0']\n"
    stream.write("rediss://h/0?ssl_password=hunter2")
    stream.flush()
    assert SECRET not in out.getvalue() and out.getvalue().endswith("progress rediss://h/0?ssl_password=***")
    assert stream.writable() and not stream.isatty()  # every other attribute is the wrapped stream's


@pytest.mark.slow
def test_a_multirun_with_passwords_in_url_and_tls_option_writes_them_nowhere(tmp_path):
    """Two jobs: the password in the URL's userinfo (unquoted: Hydra escapes it) and in
    ``ssl_password`` (quoted, and escaped). No server listens, so every point fails and Hydra
    prints its job-failure line with the overrides; the secret must appear in no file under the
    results (run folders and the sweep folder's multirun.yaml), no folder name and no console line."""
    results = tmp_path / "results"
    urls = [
        r"rediss://:hunter2@127.0.0.1:1/0?ssl_password\=hunter2",
        "'redis://kv:hunter2@127.0.0.1:1/0?ssl_password=hunter2'",
    ]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kvbench",
            "-m",
            "+exp=tiers",
            "model=tiny_random",
            "device=cpu",
            "dtype=float32",
            "doc_tokens=[32]",
            "timing.warmup=0",
            "timing.repeats=1",
            "tier=redis",
            "tier.connect_timeout_s=1",
            "tier.url=" + ",".join(urls),
            f"results_dir={results}",
        ],
        cwd=ROOT,
        env=dict(os.environ, HYDRA_FULL_ERROR="0"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Error executing job with overrides: [" in proc.stderr  # Hydra's line was printed, redacted
    assert "#1 : " in proc.stdout and "ssl_password" in proc.stdout  # both jobs ran and were announced
    assert SECRET not in proc.stdout + proc.stderr
    written = list(results.rglob("*"))
    assert (results / "tiers" / "multirun.yaml").is_file() and len([p for p in written if p.name == "rows.jsonl"]) == 2
    for path in written:
        assert SECRET not in str(path.relative_to(tmp_path))
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
