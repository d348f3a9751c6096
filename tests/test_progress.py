"""Progress: the live display shows stages once, the log gets every stage with its duration, a pipe gets no redraws."""

from __future__ import annotations

import contextlib
import io
import logging
import sys

from conftest import TINY
from rich.console import Console

from kvbench.run.app import run
from kvbench.run.progress import RunProgress, clock


@contextlib.contextmanager
def console_log():
    """A console log handler on (captured) stdout, as Hydra's job logging installs one.

    Made inside the test, not in a fixture: pytest swaps the captured stdout between phases.
    """
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)  # setLevel, not the attribute: it clears the loggers' isEnabledFor caches
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _one_point(bar: RunProgress) -> None:
    bar.start_point("L=32 reader=fast")
    bar.stage("timing prefill and reuse, rounds", 1, 3)
    bar.stage("timing prefill and reuse, rounds", 3, 3)
    logging.getLogger("kvbench.elsewhere").warning("a warning while the bar is live")
    bar.stage("exactness (fast reader), documents", 2, 2)
    bar.end_point("ok")


def test_live_display_shows_stages_and_prints_other_lines_once(capsys):
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    with console_log() as console_handler, RunProgress(2, "default tiny", console=console) as bar:
        assert bar.live
        _one_point(bar)
    shown = screen.getvalue()
    assert shown.count("a warning while the bar is live") == 1  # above the display, once
    assert "exactness (fast reader), documents" in shown and "ETA" in shown and "1/2" in shown
    assert "done in" not in shown  # stage log lines are the display's, not printed again
    assert capsys.readouterr().out == ""
    assert console_handler.stream is sys.stdout and not console_handler.filters  # handler given back


def test_without_a_terminal_the_log_lines_are_the_progress(capsys, tmp_path):
    log_file = logging.FileHandler(tmp_path / "kvbench.log")
    log_file.setFormatter(logging.Formatter("[%(asctime)s] %(message)s"))
    logging.getLogger().addHandler(log_file)
    screen = io.StringIO()
    try:
        with console_log(), RunProgress(1, "default tiny", console=Console(file=screen, width=120)) as bar:
            assert not bar.live
            _one_point(bar)
    finally:
        logging.getLogger().removeHandler(log_file)
        log_file.close()
    assert screen.getvalue() == ""  # no bar redrawn into a file or a launcher's log
    out = capsys.readouterr().out
    logged = (tmp_path / "kvbench.log").read_text()
    for line in (
        "point 1/1 L=32 reader=fast\n",
        "timing prefill and reuse, rounds (3 steps)",
        "timing prefill and reuse, rounds 3/3 done in",
        "exactness (fast reader), documents 2/2 done in",
        "point 1/1 L=32 reader=fast: ok in",
    ):
        assert out.count(line) == 1 and logged.count(line) == 1, line
    assert logged.startswith("[20")  # timestamped


def test_a_run_reports_its_stages(make_cfg, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="kvbench.progress")
    run(make_cfg(*TINY), tmp_path / "run")
    lines = [r.getMessage() for r in caplog.records if r.name == "kvbench.progress"]
    assert sum(line.startswith("point ") and line.endswith(" s") for line in lines) == 4
    for reader in ("fast", "hf"):
        assert sum(f"exactness ({reader} reader), documents 2/2 done in" in line for line in lines) == 2
    assert sum("timing prefill (eager, fast) and reuse (fast, hf), rounds 2/2 done in" in line for line in lines) == 2


def test_clock():
    assert (clock(None), clock(0), clock(61.4), clock(3725)) == ("-:--:--", "0:00:00", "0:01:01", "1:02:05")
