"""The manifest's code version: the checkout's git, unless the launcher names the commit."""

from __future__ import annotations

from kvbench.rows.provenance import git_state, nvidia_smi_info


def test_named_commit_wins_over_a_stale_checkout(monkeypatch):
    monkeypatch.setenv("KVBENCH_GIT_SHA", "abc1234")
    monkeypatch.setenv("KVBENCH_GIT_DIRTY", "false")
    assert git_state() == {"git_sha": "abc1234", "git_dirty": "false"}


def test_without_a_named_commit_the_checkout_or_unknown_answers(monkeypatch):
    monkeypatch.delenv("KVBENCH_GIT_SHA", raising=False)
    state = git_state()
    assert state["git_sha"] == "unknown" or len(state["git_sha"]) == 40


def _fake_smi(tmp_path, monkeypatch, body: str) -> None:
    smi = tmp_path / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\n{body}\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))


def test_power_limit_and_clock_are_read_beside_the_driver(tmp_path, monkeypatch):
    _fake_smi(tmp_path, monkeypatch, 'echo "$1" > "${0%/*}/args"; echo "580.95.05, 600.00 W, 700.00 W, 1980 MHz"')
    assert nvidia_smi_info("GPU-abc") == {
        "driver": "580.95.05",
        "power_limit_w": 600.0,
        "power_max_limit_w": 700.0,
        "max_sm_clock_mhz": 1980.0,
    }
    assert (tmp_path / "args").read_text().strip() == "--id=GPU-abc"


def test_what_nvidia_smi_cannot_say_is_none(tmp_path, monkeypatch):
    _fake_smi(tmp_path, monkeypatch, 'echo "580.95.05, [N/A], [N/A], 1980 MHz"')
    assert nvidia_smi_info()["power_limit_w"] is None
    _fake_smi(tmp_path, monkeypatch, "exit 9")
    assert set(nvidia_smi_info().values()) == {None}
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert set(nvidia_smi_info().values()) == {None}
