"""Batched prediction and per-language scoring; decoding and metrics come from the task type.

    decoded = predict(model, feats, task_type=tt, batch_size=64, device=Device.resolve("cpu"))
    ev = evaluate_splits(model, {("validation", "fr"): (split, feats), ...}, tt, ["accuracy"], ...)
    ev.metrics["validation"]["fr"]   -> {"accuracy": 0.61, "n": 2490}
    ev.predictions                   -> DataFrame(split, lang, idx, <the type's prediction columns>, stat_*)

Prediction runs under `torch.inference_mode` in eval mode over length-bucketed batches (`xlt.data.batches`
with shuffle=False: longest first, so an out-of-memory shows at once); the type's `decode` keeps what it
needs of each batch and its `predictions` puts examples back in source order. Nothing here prints; progress
goes to `on_event`. The task type is always given: nothing here knows one kind of task from another.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from xlt.data import Features, batches
from xlt.device import Device, is_out_of_memory
from xlt.errors import XltError
from xlt.results import STAT_PREFIX

Event = dict[str, Any]


def predict(model: nn.Module, feats: Features, *, task_type, batch_size: int = 64,
            device: Device | torch.device | str = "cpu", on_batch: Callable[[int], None] | None = None, inference: bool = True) -> list[Any]:
    """The type's `decode` of every batch over all rows of `feats`.

    inference=True runs under `torch.inference_mode` (final evaluation). Evaluations in the middle of
    training pass False (`torch.no_grad`): a tensor a model caches while in inference mode (the native
    DeBERTa caches its relative-position indices per length) could not be used by the next training step.
    """
    tt = task_type
    run_on = Device.of(device)
    was_training = model.training
    model.eval()
    decoded = []
    try:
        with torch.inference_mode() if inference else torch.no_grad():
            for batch in batches(feats, batch_size, shuffle=False, collate_fn=tt.collate):
                tt_ids = batch.get("token_type_ids")
                dev = run_on.torch_device
                with run_on.autocast():
                    logits = model(batch["input_ids"].to(dev), batch["attention_mask"].to(dev),
                                   tt_ids.to(dev) if tt_ids is not None else None)
                decoded.append(tt.decode(logits.float(), batch, feats))
                if on_batch is not None:
                    on_batch(len(batch["row"]))
    except Exception as exc:
        if is_out_of_memory(exc):
            raise XltError(f"out of memory during evaluation at an eval batch of {batch_size} rows; lower it "
                           f"with --set eval_batch_size={max(1, batch_size // 2)}") from None
        raise
    finally:
        model.train(was_training)
    return decoded


def predictions_for(model: nn.Module, feats: Features, split=None, *, task_type, **kw) -> pd.DataFrame:
    """One row per example: idx and the type's prediction columns, in source order."""
    return task_type.predictions(split, feats, predict(model, feats, task_type=task_type, **kw))


def dev_score(model: nn.Module, feats: Features, metric: str, *, split=None, task_type, batch_size: int = 64,
              device: Device | torch.device | str = "cpu") -> float:
    """One metric on one split during training (model selection): `torch.no_grad`, not inference mode."""
    preds = predictions_for(model, feats, split, task_type=task_type, batch_size=batch_size, device=device,
                            inference=False)
    return float(task_type.score(preds, [metric])[metric])


@dataclass
class Evaluation:
    metrics: dict[str, dict[str, dict[str, float | int]]] = field(default_factory=dict)  # split -> lang -> ...
    predictions: pd.DataFrame | None = None
    seconds: float = 0.0
    examples: int = 0
    rows: int = 0                                         # model rows (windows) predicted
    counts: dict[str, int] = field(default_factory=dict)  # other units scored, e.g. {"words": 52000} (tagging)
    collapsed: list[str] = field(default_factory=list)   # "split/lang" whose predictions are degenerate
    calibration: dict[str, Any] = field(default_factory=dict)   # the type's decisions across splits

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else 0.0

    def throughput(self, unit: str) -> dict[str, float]:
        """Per second: the type's examples (`unit`: pairs, sentences, questions) and every other unit counted."""
        per_s = lambda n: round(n / self.seconds, 1) if self.seconds > 0 else 0.0   # noqa: E731
        return {f"eval_{unit}_per_s": per_s(self.examples),
                **{f"eval_{name}_per_s": per_s(n) for name, n in self.counts.items()}}


def evaluate_splits(model: nn.Module, data: Mapping[tuple[str, str], tuple[Any, Features]], task_type,
                    metric_names: Sequence[str], *, batch_size: int = 64,
                    device: Device | torch.device | str = "cpu",
                    on_event: Callable[[Event], None] | None = None) -> Evaluation:
    """Predict every (split, lang) of `data` ({key: (SplitData, Features)}), let the type make its decisions
    across splits (`TaskType.calibrate`, e.g. BUCC's threshold chosen on dev), then score each; predictions
    come back as one frame in the given order, with each example's statistics (`stat_*`)."""
    tt = task_type
    emit = on_event or (lambda event: None)
    ev = Evaluation()
    predicted: dict[tuple[str, str], pd.DataFrame] = {}
    tic = time.perf_counter()
    for (split_name, lang), (split, feats) in data.items():
        emit({"event": "eval_start", "split": split_name, "lang": lang, "total": len(feats)})
        predicted[(split_name, lang)] = predictions_for(
            model, feats, split, task_type=tt, batch_size=batch_size, device=device,
            on_batch=lambda n, s=split_name, l=lang: emit({"event": "eval_batch", "split": s, "lang": l, "n": n}))
        ev.rows += len(feats)
        emit({"event": "eval_end", "split": split_name, "lang": lang})
    predicted, ev.calibration = tt.calibrate(predicted)
    frames = []
    for (split_name, lang), preds in predicted.items():
        stats = tt.statistics(preds)
        values = tt.score_statistics(stats, metric_names)
        ev.metrics.setdefault(split_name, {})[lang] = values
        ev.examples += int(values["n"])
        for key, value in values.items():
            if key.startswith("n_"):
                ev.counts[key[2:]] = ev.counts.get(key[2:], 0) + int(value)
        if tt.collapsed(preds):
            ev.collapsed.append(f"{split_name}/{lang}")
        frames.append(pd.concat([preds.assign(split=split_name, lang=lang),
                                 stats.add_prefix(STAT_PREFIX).set_axis(preds.index)], axis=1))
    ev.seconds = time.perf_counter() - tic
    columns = ["split", "lang", "idx", *tt.prediction_columns]
    if not frames:
        ev.predictions = pd.DataFrame(columns=columns)
        return ev
    preds = pd.concat(frames, ignore_index=True)
    # a statistic one (split, language) does not have (a class it never saw) stays empty (NaN) there
    stat_columns = sorted(c for c in preds.columns if c.startswith(STAT_PREFIX))
    ev.predictions = preds[columns + stat_columns]
    return ev


def metrics_from_predictions(predictions: pd.DataFrame, metric_names: Sequence[str], task_type) -> dict:
    """Recompute `metrics[split][lang]` from a predictions frame (what a reader of the parquet file gets)."""
    tt = task_type
    out: dict[str, dict[str, dict]] = {}
    for (split, lang), group in predictions.groupby(["split", "lang"], sort=False):
        out.setdefault(split, {})[lang] = tt.score(group.reset_index(drop=True), metric_names)
    return out


__all__ = ["predict", "predictions_for", "dev_score", "evaluate_splits", "Evaluation", "metrics_from_predictions"]
