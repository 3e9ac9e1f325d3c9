"""The progress display `xlt run` shows on stderr, fed by the runner's events (`xlt.runner.execute`).

On a terminal: two rich bars, however many languages a task has: training (epoch, step/total, loss, lr,
tokens/s, ETA) and evaluation (rows done/total over every split and language, which one is running, ETA).
Dev scores, warnings and the load report are printed above the bars as they come.

Into a pipe or a log file: plain lines, one every `interval` seconds (XLT_PROGRESS_INTERVAL, default 30) while
training or evaluating, plus every dev score, warning and the end of each phase, so a log shows progress
while the run is going rather than one block at the end.

Text from the run (model, language, messages) is printed with markup off: `[/x]` in a name is just text.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Callable

Event = dict[str, Any]
DEFAULT_INTERVAL_S = 30.0


def make_progress(console, interval: float | None = None):
    """Rich bars when `console` is a terminal, else periodic plain lines."""
    if console.is_terminal:
        return RichProgress(console)
    if interval is None:
        interval = float(os.environ.get("XLT_PROGRESS_INTERVAL", DEFAULT_INTERVAL_S))
    return PlainProgress(console, interval=interval)


def _clock(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-:--:--"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class _State:
    """What both displays track: training and evaluation position."""

    def __init__(self) -> None:
        self.total_steps = 0
        self.steps_per_epoch = 1
        self.step = 0
        self.loss = self.lr = self.tokens_per_s = None
        self.eval_parts = self.eval_rows = None      # from "eval_plan" (None: not announced)
        self.parts_done = self.rows_done = 0
        self.current = ""                           # the split/language being evaluated

    @property
    def epochs(self) -> int:
        return max(1, math.ceil(self.total_steps / max(1, self.steps_per_epoch)))

    @property
    def epoch(self) -> int:
        return min(self.epochs, self.step // max(1, self.steps_per_epoch) + 1)

    def train_info(self) -> str:
        parts = [f"epoch {self.epoch}/{self.epochs}"]
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4f}")
        if self.lr is not None:
            parts.append(f"lr {self.lr:.2e}")
        if self.tokens_per_s:
            parts.append(f"{self.tokens_per_s:.0f} tok/s")
        return "  ".join(parts)

    def eval_info(self) -> str:
        total = f"/{self.eval_parts}" if self.eval_parts is not None else ""
        now = f"  {self.current}" if self.current else ""
        return f"{self.parts_done}{total} split/languages done{now}"

    def update(self, event: Event) -> None:
        kind = event.get("event")
        if kind == "train_start":
            self.total_steps = int(event["total_steps"])
            self.steps_per_epoch = int(event.get("steps_per_epoch") or 1)
            self.step = int(event.get("step", 0))
        elif kind == "step":
            self.step = int(event["step"])
            self.total_steps = int(event.get("total_steps", self.total_steps))
            self.loss, self.lr, self.tokens_per_s = event.get("loss"), event.get("lr"), event.get("tokens_per_s")
        elif kind == "eval_plan":
            self.eval_parts, self.eval_rows = int(event["parts"]), int(event["rows"])
        elif kind == "eval_start":
            self.current = f"{event['split']}/{event['lang']}"
        elif kind == "eval_batch":
            self.rows_done += int(event["n"])
        elif kind == "eval_end":
            self.parts_done += 1


def _message(event: Event) -> str | None:
    """The line printed for an event that is news rather than progress (None for progress events)."""
    kind = event.get("event")
    if kind == "dev":
        return (f"step {event['step']}: dev {event['value']:.4f} (best {event['best_value']:.4f} at step "
                f"{event['best_step']})")
    if kind == "model_loaded":
        return f"model: {event['report']}"
    if kind == "warning":
        return f"warning: {event['message']}"
    if kind == "resumed":
        return f"resumed from the checkpoint at step {event['step']}"
    return None


class RichProgress:
    """Two rich bars on stderr: training and evaluation (module docstring)."""

    def __init__(self, console=None):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = console or Console(stderr=True)
        self.progress = Progress(TextColumn("{task.description}", style="bold", markup=False), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 TextColumn("{task.fields[info]}", markup=False), console=self.console,
                                 transient=False)
        self.state = _State()
        self.train_task = None
        self.eval_task = None
        self.started = False

    def _start(self) -> None:
        if not self.started:
            self.progress.start()
            self.started = True

    def __call__(self, event: Event) -> None:
        kind = event.get("event")
        st = self.state
        st.update(event)
        line = _message(event)
        if line is not None:
            self.console.print(line, style="yellow" if kind == "warning" else None, highlight=False, markup=False,
                               soft_wrap=True)
        if kind == "train_start":
            self._start()
            info = f"{event.get('device', '')} {event.get('precision', '')}".strip()
            self.train_task = self.progress.add_task("train", total=st.total_steps, completed=st.step, info=info)
        elif kind == "step" and self.train_task is not None:
            self.progress.update(self.train_task, completed=st.step, total=st.total_steps, info=st.train_info())
        elif kind in ("eval_plan", "eval_start") and self.eval_task is None:
            self._start()
            self.eval_task = self.progress.add_task("eval", total=st.eval_rows, info=st.eval_info())
        if kind in ("eval_start", "eval_batch", "eval_end") and self.eval_task is not None:
            self.progress.update(self.eval_task, completed=st.rows_done, info=st.eval_info())

    def close(self) -> None:
        if self.started:
            self.progress.stop()
            self.started = False


class PlainProgress:
    """Plain lines for a log: progress every `interval` seconds, news as it comes (module docstring)."""

    def __init__(self, console, interval: float = DEFAULT_INTERVAL_S, clock: Callable[[], float] = time.monotonic):
        self.console = console
        self.interval = interval
        self.clock = clock
        self.state = _State()
        self.last_line: float | None = None
        self.train_began: tuple[float, int] | None = None     # (time, step) when training (re)started
        self.eval_began: float | None = None

    def _print(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def _due(self, now: float) -> bool:
        return self.last_line is None or now - self.last_line >= self.interval

    def _eta(self, began: float, done: float, total: float, now: float) -> str:
        rate = done / (now - began) if now > began and done > 0 else None
        return _clock((total - done) / rate if rate else None)

    def __call__(self, event: Event) -> None:
        kind = event.get("event")
        st = self.state
        st.update(event)
        now = self.clock()
        line = _message(event)
        if line is not None:
            self._print(line)
        if kind == "train_start":
            self.train_began = (now, st.step)
            self._print(f"train: {st.total_steps} steps ({st.epochs} epoch(s)) on {event.get('device', '?')} "
                        f"{event.get('precision', '')}".rstrip())
            self.last_line = now
        elif kind == "step" and (self._due(now) or st.step >= st.total_steps):
            began, first = self.train_began or (now, 0)
            eta = self._eta(began, st.step - first, st.total_steps - first, now)
            share = st.step / st.total_steps if st.total_steps else 0.0
            self._print(f"train: step {st.step}/{st.total_steps} ({share:.0%})  {st.train_info()}  ETA {eta}")
            self.last_line = now
        elif kind in ("eval_plan", "eval_start") and self.eval_began is None:
            self.eval_began = now
            total = f"{st.eval_parts} split/languages, {st.eval_rows} rows" if st.eval_parts is not None else \
                "every split and language"
            self._print(f"eval: {total}")
            self.last_line = now
        elif kind in ("eval_batch", "eval_end") and self.eval_began is not None:
            finished = st.eval_parts is not None and st.parts_done >= st.eval_parts
            if finished:
                self._print(f"eval: done, {st.parts_done} split/languages in {_clock(now - self.eval_began)}")
                self.last_line = now
            elif self._due(now):
                eta = self._eta(self.eval_began, st.rows_done, st.eval_rows, now) if st.eval_rows else "-:--:--"
                rows = f"{st.rows_done}/{st.eval_rows} rows" if st.eval_rows else f"{st.rows_done} rows"
                self._print(f"eval: {st.eval_info()}  {rows}  ETA {eta}")
                self.last_line = now

    def close(self) -> None:
        pass
