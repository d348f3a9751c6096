"""An unreachable Hub dataset or model: one line naming it, exit 2, no run folder, bounded waiting. No network used."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import pytest
from test_cli import ROOT

from kvbench.config.errors import UnreachableError
from kvbench.model import hub


def _kvbench(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_ENDPOINT")}
    return subprocess.run(
        [sys.executable, "-m", "kvbench", *args],
        cwd=ROOT,
        env={**base, "HYDRA_FULL_ERROR": "0", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "env, args, key",
    [
        ({"HF_HUB_OFFLINE": "1"}, ["corpus=hub", "corpus.dataset=deepmind/pg19"], "corpus.dataset='deepmind/pg19'"),
        # a Hub that refuses connections at once: no real network is touched
        ({"HF_ENDPOINT": "http://127.0.0.1:9"}, ["corpus=hub", "corpus.dataset=deepmind/pg19"], "corpus.dataset="),
        (
            {"HF_ENDPOINT": "http://127.0.0.1:9"},
            ["model=hub", "model.path=Qwen/Qwen3-4B"],
            "model.path='Qwen/Qwen3-4B'",
        ),
    ],
)
def test_unreachable_hub_ends_in_one_line_exit_2_and_no_folder(tmp_path, env, args, key):
    proc = _kvbench(env, *args, f"results_dir={tmp_path}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]  # no retry warnings, no traceback
    assert lines[0].startswith(f"kvbench: not available: {key}") and "the network or the local cache" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_only_hub_ids_go_to_the_hub():
    assert hub.is_repo_id("deepmind/pg19") and hub.is_repo_id("gpt2")
    assert not hub.is_repo_id("/nonexistent") and not hub.is_repo_id("./data/x/y")


def test_waiting_is_bounded_by_the_timeout():
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        hub.within(lambda: time.sleep(60), 0.2)
    assert time.monotonic() - start < 30  # a hang guard; the wait itself is 0.2 s
    with pytest.raises(KeyError):
        hub.within(lambda: {}["x"], 5)
    assert hub.within(lambda: 3, 5) == 3


class RepositoryNotFoundError(Exception):
    """Named as huggingface_hub's: only the name is looked at."""


def test_a_missing_id_is_not_blamed_on_the_network(monkeypatch):
    def lookup(*args):
        raise RuntimeError("404") from RepositoryNotFoundError("nope/nope")

    monkeypatch.setattr(hub, "_lookup", lookup)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(UnreachableError, match=r"model.path='nope/nope': no such model on the Hugging Face Hub"):
        hub.from_hub("model.path", "model", "nope/nope", lambda: 1, 1.0)


def test_no_answer_falls_back_to_the_cache_with_the_hub_off(monkeypatch, caplog):
    from huggingface_hub import constants

    def lookup(*args):
        raise TimeoutError("no answer within 1 s")

    monkeypatch.setattr(hub, "_lookup", lookup)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert hub.from_hub("corpus.dataset", "dataset", "a/b", lambda: constants.HF_HUB_OFFLINE, 1.0) is True
    assert constants.HF_HUB_OFFLINE is False  # switched back on
    assert "unreachable" in caplog.text and "using the local cache" in caplog.text

    def not_cached():
        raise FileNotFoundError("Dataset a/b is not cached")

    with caplog.at_level(logging.WARNING), pytest.raises(UnreachableError, match="network or the local cache"):
        hub.from_hub("corpus.dataset", "dataset", "a/b", not_cached, 1.0)
