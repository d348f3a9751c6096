"""What a run is doing while it does it: a bar over the points, the current stage, elapsed time and ETA.

Experiments report stages through ``RunContext.stage(text, done, total)`` (prefill and reuse
timing, exactness k/D, ...); :class:`RunProgress` shows them and logs them. Every point's
start and end, and every stage's start and end with its duration, go to the ``kvbench.progress``
logger, which Hydra writes to the run folder's ``kvbench.log`` with timestamps.

The live display is drawn only when stderr is a terminal. Anywhere else (a pipe, a file, a
launcher's job log, the jobs of a multirun under submitit) the log lines are the progress, so
nothing is redrawn into a file. While the display is live, the console's log handlers skip the
stage lines (the display shows them: nothing printed twice) and write every other line above
the display, once.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

log = logging.getLogger("kvbench.progress")


def clock(seconds: float | None) -> str:
    """``h:mm:ss`` (``-:--:--`` when unknown)."""
    if seconds is None:
        return "-:--:--"
    s = max(0, round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class _Eta(ProgressColumn):
    """Time left: the mean time of the points done so far times the points left, counting down."""

    def render(self, task) -> Text:
        finish = task.fields.get("finish")
        return Text(f"ETA {clock(None if finish is None else finish - time.monotonic())}", style="progress.remaining")


class _HideStages(logging.Filter):
    """On the console's handlers while the display is live: it already shows the stage lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name != log.name


class RunProgress:
    """Progress of one run over ``total`` points; use as a context manager.

    Parameters
    ----------
    total : int
        Points this run will measure (points already done are not counted).
    title : str
        The bar's label, e.g. ``default smollm2-135m-instruct``.
    console : rich.console.Console, optional
        Where the display goes (default: stderr); it is live only if this is a terminal.
    """

    def __init__(self, total: int, title: str, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal
        self.total, self.title, self.done = total, title, 0
        self.started = time.monotonic()
        self._point: tuple[str, float] | None = None
        self._stage: tuple[str, float, int | None, int | None] | None = None  # text, start, done, total
        self._routed: list[tuple[logging.StreamHandler, Any]] = []
        self._hide = _HideStages()

    def __enter__(self) -> RunProgress:
        if not self.live:
            return self
        self.points = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("points, elapsed"),
            TimeElapsedColumn(),
            _Eta(),
            console=self.console,
        )
        self.points_task = self.points.add_task(self.title, total=self.total, finish=None)
        self.stages = Progress(
            TextColumn("  {task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(), console=self.console
        )
        self.stage_task = self.stages.add_task("starting", total=None)
        out, err = sys.stdout, sys.stderr
        self.display = Live(Group(self.points, self.stages), console=self.console, refresh_per_second=4)
        self.display.start()
        self._route_console_logs(out, err)
        return self

    def __exit__(self, *exc) -> None:
        self._end_stage()
        if self.live:
            for handler, stream in self._routed:
                handler.removeFilter(self._hide)
                handler.setStream(stream)
            self.display.stop()

    def _route_console_logs(self, out, err) -> None:
        """Console log handlers write through the display's proxies (above it), stage lines left out."""
        proxies = {id(out): sys.stdout, id(err): sys.stderr}
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.FileHandler) or not isinstance(handler, logging.StreamHandler):
                continue
            if id(handler.stream) in proxies:
                self._routed.append((handler, handler.stream))
                handler.setStream(proxies[id(handler.stream)])
                handler.addFilter(self._hide)

    def start_point(self, label: str) -> None:
        """The next point begins (``label``: its coordinates, e.g. ``L=256 reader=fast``)."""
        self._point = (label, time.monotonic())
        log.info("point %d/%d %s", self.done + 1, self.total, label)
        if self.live:
            self.stages.update(self.stage_task, description=f"{label}: starting", completed=0, total=None)

    def end_point(self, status: str) -> None:
        """The current point is done with ``status`` (ok, failed, ...)."""
        self._end_stage()
        label, start = self._point or ("", time.monotonic())
        now = time.monotonic()
        self.done += 1
        log.info("point %d/%d %s: %s in %.1f s", self.done, self.total, label, status, now - start)
        if self.live:
            finish = now + (now - self.started) / self.done * (self.total - self.done)
            self.points.update(self.points_task, completed=self.done, finish=finish)
        self._point = None

    def stage(self, text: str, done: int | None = None, total: int | None = None) -> None:
        """The current stage is ``text``; ``done`` of ``total`` steps where it counts them (rounds, documents).

        A new ``text`` ends the previous stage (logged with its duration) and starts this one;
        the same ``text`` again only moves its count.
        """
        if self._stage is not None and self._stage[0] == text:
            start = self._stage[1]
        else:
            self._end_stage()
            start = time.monotonic()
            log.info("  %s", text + (f" ({total} steps)" if total else ""))
        self._stage = (text, start, done, total)
        if self.live:
            label = self._point[0] if self._point else ""
            self.stages.update(self.stage_task, description=f"{label}: {text}", completed=done or 0, total=total)

    def _end_stage(self) -> None:
        """Log the current stage's end and duration (nothing when no stage is open)."""
        if self._stage is None:
            return
        text, start, done, total = self._stage
        self._stage = None
        steps = f" {done}/{total}" if total else ""
        log.info("  %s%s done in %.1f s", text, steps, time.monotonic() - start)
