"""The task-type interface: one subclass per kind of task owns everything that differs between kinds.

A task file's `type:` names a registered `TaskType` (`xlt.tasktypes.get_task_type`). The runner, the training
loop, evaluation, records and reports call these methods and never ask which type they hold, so adding a kind
of task is one module (see docs/task-types.md). For one (split, language) the data flows:

    read_file(path, fmt)                    raw rows of a local file (hub rows come from `datasets`);
                                            read_source_file names them as the source's `columns:`
    prepare(raw, source, task, where)       rows in the type's schema (`columns`), validated
    featurize(frame, tokenizer, task, params)  Features: model rows (one per example, or several windows)
    collate(feats, rows, train)             a batch of tensors; the model maps it to logits of `head`
    loss(logits, batch)                     the training loss
    decode(logits, batch, feats)            what to keep of a batch's outputs (numpy, on the CPU)
    predictions(split, feats, decoded)      one row per example: idx + `prediction_columns`
    score(predictions)                      {metric: value, "n": examples, "n_<unit>": other counts}
    statistics(predictions)                 per-example numbers whose sums give every metric
    metric_formulas(task)                   each metric as a formula over those sums (xlt.formulas): stored in
                                            the record, so reports score and bootstrap without this module
    external_predictions(split, path)       another system's predictions in the field's format (`xlt score`)
    export_predictions(predictions, dir)    a run's predictions in that format, per (split, language)

A type also declares its plan: `trains` (False for a type that only evaluates a pretrained encoder, e.g.
retrieval); the runner then skips training and selection, and the task needs no train or dev split.

Metric values are fractions (0..1) in records; reports show percent.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
import pandas as pd

from xlt import formulas
from xlt.errors import XltError


def export_files(predictions: pd.DataFrame, out_dir, ext: str) -> list[tuple[Any, pd.DataFrame]]:
    """(`<out_dir>/<split>-<lang>.<ext>`, its rows) per (split, language) of a run's predictions, `out_dir`
    created. The split and language come from the predictions file, which anyone can rewrite, so each must
    be a plain name (xlt.names) and each path inside `out_dir`, all checked before anything is written."""
    from pathlib import Path

    from xlt.names import check_name, inside

    out_dir = Path(out_dir)
    files = []
    for (split, lang), group in predictions.groupby(["split", "lang"], sort=False):
        path = out_dir / f"{check_name('split', split)}-{check_name('language', lang)}.{ext}"
        files.append((inside(out_dir, path), group))
    out_dir.mkdir(parents=True, exist_ok=True)
    return files


class TaskType:
    """Base class. Subclasses set the class attributes and implement the methods that raise here."""

    name: ClassVar[str]                          # the `type:` of a task file
    columns: ClassVar[tuple[str, ...]]           # roles a source maps with `columns:` (row schema)
    extensions: ClassVar[Mapping[str, str]]      # local file extension -> format read by `read_file`
    head: ClassVar[str]                          # model head: "classification" | "token" | "qa"
    metrics: ClassVar[tuple[str, ...]]           # metric names `score` can compute
    default_metrics: ClassVar[tuple[str, ...]]   # when a task file lists none; the first is the primary
    report_metrics: ClassVar[tuple[str, ...]]    # shown in a table cell ("74.2 / 62.8"); the first ranks rows
    uses_labels: ClassVar[bool] = True           # a task file must list `labels:`
    prediction_columns: ClassVar[tuple[str, ...]] = ("label", "pred")   # after split, lang, idx
    option_keys: ClassVar[tuple[str, ...]] = ()  # keys of a task file's `options:` block this type reads
    feature_keys: ClassVar[tuple[str, ...]] = ("max_seq_len",)   # hyperparameters that change features
    example_unit: ClassVar[str] = "examples"     # what one example is called in messages: pairs, sentences, ...
    trains: ClassVar[bool] = True                # fine-tuned on the source language (False: evaluation only)
    count_columns: ClassVar[tuple[str, ...]] = ()   # statistics whose totals a score reports as n_<column>

    # -- plan -----------------------------------------------------------------------------------------------
    def required_splits(self, task: Any) -> tuple[str, ...]:
        """The source-language splits a run needs besides the evaluation splits: train and dev for a type that
        trains, none for one that does not."""
        return (task.train_split, task.dev_split) if self.trains else ()

    # -- rows ---------------------------------------------------------------------------------------------
    def read_file(self, path, fmt: str) -> pd.DataFrame:
        """Raw rows of a local file in format `fmt` (one of `extensions`' values)."""
        from xlt.formats import read_table

        return read_table(path, fmt)

    def read_source_file(self, path, fmt: str, source: Any) -> pd.DataFrame:
        """`read_file` with the source's column names: a format without a header (two-column CoNLL) names
        its columns by role and says so in `frame.attrs["columns_by_role"]`; those are renamed to the
        source's `columns:`, so one mapping serves the hub's rows and local files alike."""
        frame = self.read_file(path, fmt)
        if frame.attrs.get("columns_by_role"):
            frame = frame.rename(columns={role: source.column(role) for role in self.columns})
        return frame

    def prepare(self, raw: pd.DataFrame, source: Any, task: Any, where: str) -> pd.DataFrame:
        """Rows in this type's `columns` from the source's columns (`source.column(role)`), validated.
        Raise XltError naming `where` and the fix for anything wrong. May drop rows (return `dropped`
        in `frame.attrs["dropped"]`)."""
        raise NotImplementedError

    def head_options(self, task: Any, hparams: Any) -> dict[str, Any]:
        """Options of the model head beyond its width (xlt.models.heads), from the task and the run's
        hyperparameters: e.g. which layer the encoder head returns. Default: none."""
        return {}

    def num_outputs(self, task: Any) -> int:
        """Width of the head: label count for classification and tagging, 2 for span extraction."""
        return len(task.label_names)

    def check_options(self, options: Mapping[str, Any]) -> list[str]:
        """Problems with a task file's `options:` block (one message each); empty when fine."""
        return [f"unknown option {k!r} for type {self.name} (known: {', '.join(self.option_keys) or 'none'})"
                for k in options if k not in self.option_keys]

    # -- features and training ------------------------------------------------------------------------------
    def featurize(self, split, tokenizer: Any, params: Mapping[str, Any]):
        """Tokenise a SplitData (its `frame` in this type's schema) into `xlt.data.Features`; `params` holds
        the `feature_keys` hyperparameters. Rows must carry `index`, the example each comes from."""
        raise NotImplementedError

    def collate(self, feats, rows: np.ndarray) -> dict:
        """A padded batch of the model rows `rows` (default: every Features array, `xlt.data.collate`)."""
        from xlt.data import collate

        return collate(feats, rows)

    def loss(self, logits, batch: dict):
        raise NotImplementedError

    def sift_logits(self, logits, batch: dict):
        """(N, C) logits of the distributions SiFT's symmetric KL compares (default: the logits as given)."""
        return logits.reshape(-1, logits.shape[-1])

    # -- evaluation -----------------------------------------------------------------------------------------
    def decode(self, logits, batch: dict, feats) -> Any:
        """What `predictions` needs of one batch's outputs, as numpy arrays."""
        raise NotImplementedError

    def predictions(self, split, feats, decoded: Sequence[Any]) -> pd.DataFrame:
        """One row per example of `split.frame`, in source order: `idx` (position in the split) and the
        `prediction_columns`."""
        raise NotImplementedError

    def score(self, predictions: pd.DataFrame, metrics: Sequence[str]) -> dict[str, float | int]:
        """The named metrics over one (split, language)'s predictions, with "n" (examples) and the totals of
        `count_columns` as "n_<unit>" (e.g. n_words)."""
        return self.score_statistics(self.statistics(predictions), metrics)

    def score_statistics(self, stats: pd.DataFrame, metrics: Sequence[str]) -> dict[str, float | int]:
        """`score` from per-example statistics already computed (`statistics(predictions)`)."""
        if len(stats) == 0:
            raise XltError("cannot score zero examples; the split is empty")
        totals = {c: np.asarray(stats[c].sum(), dtype=float) for c in stats.columns}
        out: dict[str, float | int] = {m: float(self.metric_from_totals(m, totals, len(stats))) for m in metrics}
        out["n"] = int(len(stats))
        out.update({f"n_{unit}": int(totals[unit]) for unit in self.count_columns})
        return out

    def statistics(self, predictions: pd.DataFrame) -> pd.DataFrame:
        """Per example (same order as `predictions`), numeric columns whose column sums give every metric
        through `metric_formulas`: correct (pairs); tp, fp, fn (spans); em, f1 (QA)."""
        raise NotImplementedError

    def metric_formulas(self, task: Any = None) -> dict[str, dict]:
        """Each metric of this type as a formula over the column sums of `statistics` (xlt.formulas); `task`
        (a TaskSpec, or None) may refine them, e.g. the classes macro F1 averages over."""
        raise NotImplementedError

    def metric_from_totals(self, metric: str, totals: Mapping[str, np.ndarray], n: int | np.ndarray) -> np.ndarray:
        """`metric` from column sums of `statistics` over n examples, through its formula. Vectorised: each
        total may be an array (one entry per bootstrap resample)."""
        formula = self.metric_formulas().get(metric)
        if formula is None:
            raise XltError(f"unknown metric {metric!r} for type {self.name}; known: {', '.join(self.metrics)}")
        return formulas.evaluate(formula, totals, n)

    def metric_info(self, task: Any, task_info: Mapping[str, Any]) -> dict[str, dict]:
        """What a record says about each of the task's metrics so that reports need nothing else: its formula,
        its caption (how it is computed) and that higher is better. `task_info` is the record's task block."""
        every = self.metric_formulas(task)
        return {m: {"formula": every[m], "caption": self.metric_caption({**task_info, "primary_metric": m}),
                    "higher_is_better": True} for m in task.metrics}

    def calibrate(self, predictions: Mapping[tuple[str, str], pd.DataFrame]
                  ) -> tuple[dict[tuple[str, str], pd.DataFrame], dict[str, Any]]:
        """Decisions across splits, made once every (split, language) is predicted and before any is scored
        (BUCC: the threshold chosen on the dev split's gold, applied to the test split). Returns the predictions
        (changed where the decision applies) and what the record keeps of it (`calibration`). Default: none."""
        return dict(predictions), {}

    def collapsed(self, predictions: pd.DataFrame) -> bool:
        """True when the predictions are degenerate (e.g. one class for every example): flagged in the record."""
        return False

    def external_predictions(self, split, path) -> pd.DataFrame:
        """Predictions of a system xlt did not train, read from `path` in the field's usual format for this
        type, as the frame `predictions` returns (idx + `prediction_columns`) for `split`: for `xlt score`."""
        raise XltError(f"type {self.name} cannot read external predictions yet")

    def export_predictions(self, predictions: pd.DataFrame, out_dir) -> list:
        """Write a run's predictions (split, lang, idx + `prediction_columns`) to `out_dir` in the field's usual
        format for this type, one file per (split, language); return the paths. Default: `<split>-<lang>.csv`
        with idx and the prediction columns."""
        paths = []
        for path, group in export_files(predictions, out_dir, "csv"):
            group[["idx", *self.prediction_columns]].to_csv(path, index=False)
            paths.append(path)
        return paths

    def metric_caption(self, task_info: Mapping[str, Any]) -> str:
        """How the primary metric is computed, for table captions (e.g. "seqeval entity-level micro F1")."""
        return str(task_info.get("primary_metric", self.default_metrics[0]))
