"""The progress display `xlt run` shows: rich bars on stderr, fed by the runner's events."""

from __future__ import annotations

from typing import Any

Event = dict[str, Any]


class RichProgress:
    """Rich progress bars on stderr: training (loss, lr, tokens/s) and evaluation per language."""

    def __init__(self, console=None):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console or Console(stderr=True)
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=self.console,
                                 transient=False)
        self.train_task = None
        self.eval_tasks: dict[tuple[str, str], Any] = {}
        self.started = False

    def _start(self) -> None:
        if not self.started:
            self.progress.start()
            self.started = True

    def __call__(self, event: Event) -> None:
        kind = event.get("event")
        if kind == "train_start":
            self._start()
            self.train_task = self.progress.add_task("train", total=event["total_steps"],
                                                     completed=event.get("step", 0),
                                                     info=f"{event['device']} {event['precision']}")
        elif kind == "step" and self.train_task is not None:
            self.progress.update(self.train_task, completed=event["step"],
                                 info=f"loss {event['loss']:.4f}  lr {event['lr']:.2e}  "
                                      f"{event['tokens_per_s']:.0f} tok/s")
        elif kind == "dev" and self.train_task is not None:
            self.progress.console.print(f"step {event['step']}: dev {event['value']:.4f} "
                                        f"(best {event['best_value']:.4f} at step {event['best_step']})",
                                        highlight=False)
        elif kind == "model_loaded":
            self.console.print(f"model: {event['report']}", highlight=False, markup=False, soft_wrap=True)
        elif kind == "warning":
            self.console.print(f"warning: {event['message']}", style="yellow", highlight=False, markup=False,
                               soft_wrap=True)
        elif kind == "resumed":
            self.console.print(f"resumed from the checkpoint at step {event['step']}", highlight=False)
        elif kind == "eval_start":
            self._start()
            key = (event["split"], event["lang"])
            self.eval_tasks[key] = self.progress.add_task(f"eval {key[0]}/{key[1]}", total=event["total"], info="")
        elif kind == "eval_batch":
            task = self.eval_tasks.get((event["split"], event["lang"]))
            if task is not None:
                self.progress.advance(task, event["n"])
        elif kind == "eval_end":
            task = self.eval_tasks.get((event["split"], event["lang"]))
            if task is not None:
                values = event["metrics"]
                shown = "  ".join(f"{k} {v:.4f}" for k, v in values.items() if k != "n")
                self.progress.update(task, info=shown)

    def close(self) -> None:
        if self.started:
            self.progress.stop()
            self.started = False
