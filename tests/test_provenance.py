"""The manifest's code version: the checkout's git, unless the launcher names the commit."""

from __future__ import annotations

from kvbench.rows.provenance import git_state


def test_named_commit_wins_over_a_stale_checkout(monkeypatch):
    monkeypatch.setenv("KVBENCH_GIT_SHA", "abc1234")
    monkeypatch.setenv("KVBENCH_GIT_DIRTY", "false")
    assert git_state() == {"git_sha": "abc1234", "git_dirty": "false"}


def test_without_a_named_commit_the_checkout_or_unknown_answers(monkeypatch):
    monkeypatch.delenv("KVBENCH_GIT_SHA", raising=False)
    state = git_state()
    assert state["git_sha"] == "unknown" or len(state["git_sha"]) == 40
