"""A checkpoint's labels matched to a task's labels by name, never by position.

    match = match_labels(["CONTRADICTION", "entailment", "neutral"], ["entailment", "neutral", "contradiction"])
    match.columns   -> (1, 2, 0)      the checkpoint's output column for each task label, in the task's order
    match.to_record()                 what the record keeps: both lists, the map, how each label was matched

A checkpoint's label order is its own: MNLI models on the hub order entailment/neutral/contradiction in at
least three ways, so comparing ids would report a confident, wrong accuracy. Each task label is found among the
checkpoint's `id2label` names, in this order of trust: the user's `--label-map`, the same name, the same name
up to case and `-`/`_`/space, a common spelling of the same meaning (SPELLINGS), and a checkpoint label that is
a plain number k, read as the task file's label id k (its `labels:` list numbers them 0..n-1, as the data does:
PAWS-X's `0` is not_paraphrase). Placeholder names (`LABEL_0`) match nothing.

Refused (an XltError naming both label lists and the fix `--label-map ...`): a task label no checkpoint label
matches, unless the user gave `--label-map` (the label is then never predicted and counts as an error); two
checkpoint labels matching one task label. Checkpoint labels the task does not have (`B-MISC` on PAN-X) are
left out: the model predicts only among the task's labels (`unused`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from xlt.errors import XltError

# One meaning, its common spellings, compared after `key()`.
SPELLINGS: dict[str, tuple[str, ...]] = {
    "entailment": ("entailment", "entails", "entailed", "entail"),
    "contradiction": ("contradiction", "contradictory", "contradicts", "contradict", "contradicted"),
    "neutral": ("neutral",),
    "not_paraphrase": ("not_paraphrase", "non_paraphrase", "no_paraphrase", "not_a_paraphrase"),
    "paraphrase": ("paraphrase", "is_paraphrase"),
}
_MEANING = {spelling: meaning for meaning, spellings in SPELLINGS.items() for spelling in spellings}
# How a task label was found, most trusted first.
HOW = ("--label-map", "same name", "same name up to case", "common spelling", "the task file's label id")


def key(name: str) -> str:
    """A label name compared loosely: case-folded, runs of `-`, `_` and spaces read as one `_`."""
    return re.sub(r"[\s_\-]+", "_", str(name).strip().casefold())


def _ascii_id(name: str) -> int | None:
    text = str(name).strip()
    return int(text) if text.isascii() and text.isdigit() else None


@dataclass(frozen=True)
class LabelMatch:
    task_labels: tuple[str, ...]
    checkpoint_labels: tuple[str, ...]
    columns: tuple[int | None, ...]    # per task label: the checkpoint's output column (None: never predicted)
    how: tuple[str | None, ...]        # per task label: one of HOW (None: never predicted)

    @property
    def unused(self) -> tuple[str, ...]:
        """Checkpoint labels the task does not have: left out, the model predicts among the task's labels."""
        used = set(self.columns)
        return tuple(name for i, name in enumerate(self.checkpoint_labels) if i not in used)

    @property
    def never_predicted(self) -> tuple[str, ...]:
        return tuple(name for name, col in zip(self.task_labels, self.columns) if col is None)

    def to_record(self) -> dict[str, Any]:
        return {"task_labels": list(self.task_labels), "checkpoint_labels": list(self.checkpoint_labels),
                "map": {t: (self.checkpoint_labels[c] if c is not None else None)
                        for t, c in zip(self.task_labels, self.columns)},
                "how": dict(zip(self.task_labels, self.how)), "unused_checkpoint_labels": list(self.unused),
                "never_predicted": list(self.never_predicted)}


def match_labels(checkpoint_labels: Sequence[str], task_labels: Sequence[str],
                 label_map: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
                 task_name: str = "the task") -> LabelMatch:
    """Each task label's column among the checkpoint's labels (module docstring); an XltError when a task label
    has no match and the user gave no `--label-map`, naming both lists and the fix."""
    ckpt, task = [str(x) for x in checkpoint_labels], [str(x) for x in task_labels]
    given = list(label_map.items()) if isinstance(label_map, Mapping) else list(label_map or [])
    columns: dict[str, int] = {}
    how: dict[str, str] = {}
    for source, target in given:
        col = _find(ckpt, source)
        if col is None:
            raise XltError(f"--label-map names checkpoint label {source!r}, which the checkpoint does not have "
                           f"(its labels: {', '.join(ckpt)})")
        if target not in task:
            raise XltError(f"--label-map maps {source!r} to {target!r}, which is not a label of {task_name} "
                           f"(its labels: {', '.join(task)})")
        if target in columns:
            raise XltError(f"--label-map maps two checkpoint labels to {target!r}; a task label comes from one "
                           "checkpoint label")
        columns[target], how[target] = col, HOW[0]
    taken = set(columns.values())
    for level, found in enumerate((_same, _same_key, _same_meaning, _task_id), start=1):
        for i, target in enumerate(task):
            if target in columns:
                continue
            hits = [c for c, name in enumerate(ckpt) if c not in taken and found(name, target, i)]
            if len(hits) > 1:
                raise XltError(f"checkpoint labels {', '.join(ckpt[c] for c in hits)} all read as {task_name}'s "
                               f"label {target!r}; say which one with --label-map {ckpt[hits[0]]}={target}")
            if hits:
                columns[target], how[target] = hits[0], HOW[level]
                taken.add(hits[0])
    missing = [t for t in task if t not in columns]
    if missing and not given:
        raise XltError(_uncovered_message(ckpt, task, missing, columns, task_name))
    return LabelMatch(tuple(task), tuple(ckpt), tuple(columns.get(t) for t in task), tuple(how.get(t) for t in task))


def _find(ckpt: list[str], name: str) -> int | None:
    exact = [i for i, n in enumerate(ckpt) if n == name]
    loose = [i for i, n in enumerate(ckpt) if key(n) == key(name)]
    return (exact or loose or [None])[0]


def _same(name: str, target: str, index: int) -> bool:
    return name == target


def _same_key(name: str, target: str, index: int) -> bool:
    return key(name) == key(target)


def _same_meaning(name: str, target: str, index: int) -> bool:
    meaning = _MEANING.get(key(name))
    return meaning is not None and meaning == _MEANING.get(key(target))


def _task_id(name: str, target: str, index: int) -> bool:
    return _ascii_id(name) == index


def _uncovered_message(ckpt: list[str], task: list[str], missing: list[str], columns: Mapping[str, int],
                       task_name: str) -> str:
    free = [name for i, name in enumerate(ckpt) if i not in set(columns.values())]
    example = ",".join(f"{a}={b}" for a, b in zip(free, missing)) or f"CHECKPOINT_LABEL={missing[0]}"
    fewer = (f"; the checkpoint has {len(ckpt)} labels and {task_name} {len(task)}, so with --label-map the "
             "task labels nothing maps to are never predicted (they count as errors)") if len(ckpt) < len(task) else ""
    return (f"the checkpoint's labels do not name the labels of {task_name}: it has [{', '.join(task)}], the "
            f"checkpoint (config.json id2label) has [{', '.join(ckpt)}]; no match by name for "
            f"{', '.join(missing)}{fewer}. Labels are matched by name, never by position: if you know what the "
            f"checkpoint's labels mean (its model card says), pass them, e.g. --label-map {example}")


__all__ = ["LabelMatch", "match_labels", "key", "SPELLINGS", "HOW"]
