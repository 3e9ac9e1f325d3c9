"""Task suites (xlt/report/suites.yaml): which tasks form a benchmark, how they group, which metrics make a
task's score and over which languages the benchmark averages each task (XTREME: its scorer's TASK2LANGS).

The summary scores models with a suite; the tables use a suite's language list to lay out a task that has no
run records (reports read records and reference files, never task files), so that a published row printing
only some of the languages is seen to be a subset.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files

import yaml

from xlt.errors import XltError

DEFAULT_SUITE = "xtreme"


@dataclass(frozen=True)
class Group:
    name: str
    tasks: tuple[str, ...]


@dataclass(frozen=True)
class SuiteTask:
    score: tuple[str, ...]          # metrics averaged into the task's score (each a language average)
    languages: tuple[str, ...]      # the languages the suite averages the task over


@dataclass(frozen=True)
class Suite:
    name: str
    title: str
    citation: str
    groups: tuple[Group, ...]
    task_info: dict[str, SuiteTask]

    @property
    def tasks(self) -> list[str]:
        return [t for g in self.groups for t in g.tasks]

    def score_metrics(self, task: str) -> tuple[str, ...]:
        info = self.task_info.get(task)
        return info.score if info else ()

    def languages(self, task: str) -> tuple[str, ...]:
        info = self.task_info.get(task)
        return info.languages if info else ()


def _suite(name: str, data: dict) -> Suite:
    tasks = {t: SuiteTask(tuple(v["score"]), tuple(v["languages"])) for t, v in data["tasks"].items()}
    groups = tuple(Group(g["name"], tuple(g["tasks"])) for g in data["groups"])
    grouped = [t for g in groups for t in g.tasks]
    if sorted(grouped) != sorted(tasks) or len(set(grouped)) != len(grouped):
        raise XltError(f"suites.yaml: suite {name!r} must put each of its tasks ({', '.join(tasks)}) in exactly "
                       f"one group; its groups hold {', '.join(grouped)}")
    return Suite(name, data["title"], data["citation"], groups, tasks)


@cache
def suites() -> dict[str, Suite]:
    """The suites of xlt/report/suites.yaml."""
    data = yaml.safe_load(files("xlt.report").joinpath("suites.yaml").read_text(encoding="utf-8"))
    return {name: _suite(name, s) for name, s in data.items()}


def get_suite(name: str) -> Suite:
    if name not in suites():
        raise XltError(f"unknown suite {name!r}; known: {', '.join(suites())}")
    return suites()[name]


def suite_languages(task: str) -> list[str]:
    """The languages a suite averages `task` over (the first suite that has it), [] if no suite has it."""
    return next((list(s.languages(task)) for s in suites().values() if s.languages(task)), [])
