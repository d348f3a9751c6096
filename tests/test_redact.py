"""Credentials in a tier URL never reach a folder name, row, manifest, config, log or W&B."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from _tiers import redis_server_or_skip

from kvbench.rows.redact import RedactingFilter, redact
from kvbench.run.folder_names import run_dirname
from kvbench.tiers.redis_server import LocalRedisServer

ROOT = Path(__file__).resolve().parents[1]
SECRET = "hunter2"


@pytest.mark.parametrize(
    "text, clean",
    [
        ("redis://kv:hunter2@cache:6379/0", "redis://***@cache:6379/0"),
        ("rediss://:hunter2@cache:6380", "rediss://***@cache:6380"),
        ("tier.url=redis://kv:p@ss@cache/0,tier=redis", "tier.url=redis://***@cache/0,tier=redis"),
        ("redis://cache:6379/0?password=hunter2&db=1", "redis://cache:6379/0?password=***&db=1"),
        (
            "Error 111 connecting to cache:6379. redis://cache:6379/0",
            "Error 111 connecting to cache:6379. redis://cache:6379/0",
        ),
        ("tier.dir=/tmp/kv", "tier.dir=/tmp/kv"),
    ],
)
def test_redact(text, clean):
    assert redact(text) == clean


def test_folder_names_are_one_safe_component_without_credentials():
    assert run_dirname("") == "base"
    assert run_dirname("codec=int4-kivi,tier=disk") == "codec=int4-kivi,tier=disk"  # existing folders resume
    path = run_dirname("tier.dir=/tmp/x,tier=disk")
    assert "/" not in path and path.startswith("tier.dir=_tmp_x,tier=disk-")
    assert run_dirname("tier.dir=/tmp/x") != run_dirname("tier.dir=/tmp_x")  # sanitising never merges two runs
    url = run_dirname(f"tier.url=redis://kv:{SECRET}@cache:1/0")
    assert SECRET not in url and "/" not in url and ":" not in url
    assert run_dirname(f"tier.url=redis://kv:{SECRET}@cache:1/0") == run_dirname("tier.url=redis://kv:other@cache:1/0")
    assert len(run_dirname("model.path=" + "x" * 400)) < 200


def test_log_records_are_redacted(caplog):
    logger = logging.getLogger("kvbench.test_redact")
    caplog.handler.addFilter(RedactingFilter())
    logger.warning("connecting to %s", f"redis://kv:{SECRET}@cache/0")
    try:
        raise RuntimeError(f"cannot reach redis://kv:{SECRET}@cache/0")
    except RuntimeError:
        logger.exception("point failed")
    assert SECRET not in caplog.text and "redis://***@cache/0" in caplog.text


@pytest.mark.slow
def test_a_run_with_a_password_in_its_url_writes_it_nowhere(tmp_path):
    """The real command line with AUTH through the URL, W&B offline: the run works and no file,
    folder name or console line holds the password."""
    server = LocalRedisServer(redis_server_or_skip())
    try:
        redis.Redis.from_url(server.url).config_set("requirepass", SECRET)
        url = f"redis://default:{SECRET}@127.0.0.1:{server.port}/0"
        env = dict(os.environ, WANDB_SILENT="true", HYDRA_FULL_ERROR="0")
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "kvbench",
                "+exp=tiers",
                "hydra.mode=RUN",
                "model=tiny_random",
                "device=cpu",
                "dtype=float32",
                "doc_tokens=[32]",
                "timing.warmup=0",
                "timing.repeats=2",
                "tier=redis",
                f"tier.url={url}",
                f"tier.dir={tmp_path}/kv/store",
                "logger=wandb",
                "logger.mode=offline",
                f"results_dir={tmp_path / 'results'}",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert SECRET not in proc.stdout + proc.stderr
    [run_dir] = [p for p in (tmp_path / "results" / "tiers").iterdir()]  # one folder, not nested
    assert SECRET not in run_dir.name and (run_dir / "rows.jsonl").exists()
    assert '"status": "ok"' in (run_dir / "rows.jsonl").read_text()  # the password did reach the server
    written = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any("wandb" in p.parts for p in written) and (run_dir / "kvbench.log").exists()
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), path
        assert SECRET not in str(path)


def test_logged_tracebacks_name_no_machine_paths(caplog):
    """A traceback in a committed kvbench.log names the repository's files relative to its root and
    installed packages as <site-packages>/..., not the checkout or the virtual environment of the
    machine that ran it."""
    import kvbench

    root = Path(kvbench.__file__).resolve().parents[1]
    logger = logging.getLogger("kvbench.test_redact")
    caplog.handler.addFilter(RedactingFilter())
    try:
        import json

        json.loads("{")  # raises inside the standard library, called from here
    except ValueError:
        logger.exception("point failed")
    traceback = caplog.records[-1].exc_text
    assert str(root) not in traceback and 'File "tests/test_redact.py"' in traceback
