"""Committed outputs stay committed: the reference list, the committed economics against a fresh
+exp=economics, and local runs that leave every tracked file of the report and economics alone."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY

from kvbench.config.schema import load_settings
from kvbench.experiments.economics import EconomicsExperiment
from kvbench.rows.git import tracked_files
from kvbench.rows.reference import REFERENCE_FILE, reference_folders, result_paths
from kvbench.rows.store import load_rows

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


def _git_tracked_run_folders() -> set[str]:
    return {str(Path(p).parent) for p in tracked_files(RESULTS) if Path(p).name == "rows.jsonl"}


def test_reference_list_is_the_committed_run_folders():
    listed = {str(p.relative_to(RESULTS)) for p in reference_folders(RESULTS)}
    assert all((RESULTS / name / "rows.jsonl").is_file() for name in listed)
    tracked = _git_tracked_run_folders()
    if not tracked:
        pytest.skip("not a git work tree")
    assert listed == tracked, "results/REFERENCE and the run folders git tracks under results/ differ"


def test_result_paths(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert result_paths(tmp_path) == [tmp_path]  # no REFERENCE: an explicit path, read whole
    (tmp_path / REFERENCE_FILE).write_text("# comment\na  # the one\n\n")
    assert result_paths(tmp_path) == [tmp_path / "a"]
    assert result_paths(tmp_path, include_local=True) == [tmp_path]
    (tmp_path / REFERENCE_FILE).write_text("gone\n")
    with pytest.raises(FileNotFoundError, match="'gone'"):
        result_paths(tmp_path)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def test_committed_economics_is_a_fresh_run_on_the_committed_results(make_cfg):
    """Fails when results/economics/base is stale: re-measured tier, reuse or codec rows change the
    dollars, and the committed economics (and the sentences citing it) must be regenerated:
    python -m kvbench +exp=economics exp_name=economics write_tracked=true."""
    run_dir = RESULTS / "economics" / "base"
    committed = [json.loads(line) for line in (run_dir / "rows.jsonl").read_text().splitlines()]
    settings = load_settings(make_cfg("+exp=economics", f"results_dir={RESULTS}"))
    fresh = EconomicsExperiment().derive(settings)
    fresh = json.loads(json.dumps(fresh, default=str))  # as the store writes them (NaN -> null below)
    by_id = {r["point_id"]: r for r in committed}
    assert len(fresh) == len(committed) and set(by_id) == {r["point_id"] for r in fresh}
    stale = []
    for row in fresh:
        old = by_id[row["point_id"]]
        diff = [k for k in row if not _same(row[k] if row[k] == row[k] else None, old.get(k))]
        if diff:
            stale.append((row["econ_row"], row.get("model"), row.get("doc_tokens"), row.get("tier"), diff[:4]))
    assert not stale, f"{len(stale)} of {len(fresh)} committed economics rows differ from a fresh run: {stale[:5]}"


def _copy_tree(dst: Path) -> None:
    """A git work tree holding the committed results and paper, everything tracked."""
    for part in ("results", "paper"):
        shutil.copytree(ROOT / part, dst / part, ignore=shutil.ignore_patterns("default", "smoke", "economics-local"))
    shutil.copy(ROOT / ".gitignore", dst / ".gitignore")
    git = lambda *a: subprocess.run(["git", *a], cwd=dst, check=True, capture_output=True)
    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "committed outputs")


def _status(tree: Path) -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=tree, capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.slow  # the report twice, a tiny local run and the economics (~1 min on 2 cores)
def test_local_runs_never_change_a_tracked_file(make_cfg, tmp_path):
    from kvbench.report.__main__ import main as report
    from kvbench.run.app import run

    if shutil.which("git") is None:
        pytest.skip("needs git")
    tree = tmp_path / "tree"
    _copy_tree(tree)
    results = tree / "results"
    # the report from the committed rows, committed: the baseline (paper/ may lag the rows on main)
    assert report([str(results), str(tree / "paper"), "--write-tracked"]) == 0
    git = lambda *a: subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=tree, check=True)
    git("add", "-A")
    git("commit", "-qm", "report from the committed rows", "--allow-empty")

    # a local run beside the committed ones, as `make run` or `+exp=smoke` leaves it
    run(make_cfg(*TINY, f"results_dir={results}"), results / "smoke" / "base")
    assert len(load_rows([results / "smoke"])) == 4 and tracked_files(results / "smoke") == []
    # the report into the committed paper/: refused without the flag, with nothing changed
    assert report([str(results), str(tree / "paper"), "--include-local"]) == 2
    assert _status(tree) == ""
    # with it, from the reference rows: the same figures and tables, byte for byte
    assert report([str(results), str(tree / "paper"), "--write-tracked"]) == 0
    assert _status(tree) == "", "a local run changed the committed outputs"
    # local rows included, into a folder of one's own: they are read, and nothing tracked changes
    assert report([str(results), str(tmp_path / "mine"), "--include-local"]) == 0
    assert "tiny-random" in (tmp_path / "mine" / "tables" / "latency.tex").read_text()
    assert _status(tree) == ""

    # +exp=economics: reads the reference rows, writes its own folder; the committed one only on request
    cfg = make_cfg("+exp=economics", f"results_dir={results}")
    local = run(cfg, results / "economics-local" / "base")
    assert not any(r.get("model") == "tiny-random" for r in local)
    assert _status(tree) == ""
    with pytest.raises(Exception, match="write_tracked=false is invalid"):
        run(cfg, results / "economics" / "base")
    assert _status(tree) == ""


def test_report_cli_refuses_a_tracked_out_folder_in_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "kvbench.report", "results", "paper"], cwd=ROOT, capture_output=True, text=True
    )
    if not tracked_files(ROOT / "paper"):
        pytest.skip("not a git work tree")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--write-tracked" in proc.stderr


def test_committed_logs_name_no_machine_paths():
    """A committed run log names files relative to the repository (tracebacks included), never a
    machine's checkout, virtual environment or temp dir: the log filter makes them so, and a log
    merged from a node is checked here."""
    import re

    absolute = re.compile(r"(?<![\w.<])/(?:work|opt|home|root|tmp|usr)/")
    logs = sorted(ROOT.glob("results/**/kvbench.log"))
    assert logs
    offending = [
        f"{log.relative_to(ROOT)}:{n}"
        for log in logs
        for n, line in enumerate(log.read_text().splitlines(), 1)
        if absolute.search(line)
    ]
    assert not offending, offending[:5]
