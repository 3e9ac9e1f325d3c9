"""Batched prediction and per-language scoring.

    preds = predict(model, feats, batch_size=64, device="cpu")          # (n,) in the split's order
    ev = evaluate_splits(model, {("validation", "fr"): feats, ...}, ["accuracy", "macro_f1"], ...)
    ev.metrics["validation"]["fr"]   -> {"accuracy": 0.61, "macro_f1": 0.60, "n": 2490}
    ev.predictions                   -> DataFrame(split, lang, idx, label, pred), idx = position in the split

Prediction runs under `torch.inference_mode` in eval mode, over length-bucketed batches (`xlt.data.batches`
with shuffle=False: longest first, so an out-of-memory shows at once), and puts the predictions back in
source order by each batch's `index`. Nothing here prints; progress goes to `on_event`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from xlt.data import Features, batches, num_batches, restore_order
from xlt.metrics import score
from xlt.results import PREDICTION_COLUMNS
from xlt.train import autocast, is_out_of_memory

Event = dict[str, Any]


def predict(model: nn.Module, feats: Features, *, batch_size: int = 64, device: torch.device | str = "cpu",
            precision: str = "fp32", on_batch: Callable[[int], None] | None = None,
            inference: bool = True) -> np.ndarray:
    """Argmax predictions for every example of `feats`, in source order (by `feats.index`).

    inference=True runs under `torch.inference_mode` (final evaluation). Evaluations in the middle of
    training pass False (`torch.no_grad`): a tensor a model caches while in inference mode (the native
    DeBERTa caches its relative-position indices per length) could not be used by the next training step.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    indices, preds = [], []
    try:
        with torch.inference_mode() if inference else torch.no_grad():
            for batch in batches(feats, batch_size, shuffle=False):
                tt = batch.get("token_type_ids")
                with autocast(device, precision):
                    logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                                   tt.to(device) if tt is not None else None)
                preds.append(logits.argmax(-1).cpu().numpy())
                indices.append(batch["index"].numpy())
                if on_batch is not None:
                    on_batch(len(batch["index"]))
    except Exception as exc:
        if is_out_of_memory(exc):
            from xlt.errors import XltError
            raise XltError(f"out of memory during evaluation at an eval batch of {batch_size} examples; lower it "
                           f"with --set eval_batch_size={max(1, batch_size // 2)}") from None
        raise
    finally:
        model.train(was_training)
    if not preds:
        return np.zeros(0, dtype=np.int64)
    order_index = np.concatenate(indices)
    out = restore_order(order_index, np.concatenate(preds)).astype(np.int64)
    return out


def dev_score(model: nn.Module, feats: Features, metric: str, *, batch_size: int = 64,
              device: torch.device | str = "cpu", precision: str = "fp32") -> float:
    """One metric on one split during training (model selection): `torch.no_grad`, not inference mode."""
    preds = predict(model, feats, batch_size=batch_size, device=device, precision=precision, inference=False)
    return float(score([metric], labels_in_order(feats), preds)[metric])


def positions(feats: Features) -> np.ndarray:
    """Each example's position in its split, ascending (the order `predict` returns)."""
    return np.sort(np.asarray(feats.index, dtype=np.int64))


def labels_in_order(feats: Features) -> np.ndarray:
    return np.asarray(feats.labels)[np.argsort(feats.index, kind="stable")].astype(np.int64)


@dataclass
class Evaluation:
    metrics: dict[str, dict[str, dict[str, float | int]]] = field(default_factory=dict)  # split -> lang -> ...
    predictions: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=PREDICTION_COLUMNS))
    seconds: float = 0.0
    examples: int = 0
    collapsed: list[str] = field(default_factory=list)   # "split/lang" whose predictions are all one class

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else 0.0


def evaluate_splits(model: nn.Module, feats_by_split: Mapping[tuple[str, str], Features],
                    metric_names: Sequence[str], *, batch_size: int = 64, device: torch.device | str = "cpu",
                    precision: str = "fp32", on_event: Callable[[Event], None] | None = None) -> Evaluation:
    """Predict and score every (split, lang); predictions come back as one frame in the given order."""
    emit = on_event or (lambda event: None)
    ev = Evaluation()
    frames = []
    tic = time.perf_counter()
    for (split, lang), feats in feats_by_split.items():
        emit({"event": "eval_start", "split": split, "lang": lang, "total": len(feats)})
        preds = predict(model, feats, batch_size=batch_size, device=device, precision=precision,
                        on_batch=lambda n, s=split, l=lang: emit({"event": "eval_batch", "split": s, "lang": l,
                                                                  "n": n}))
        labels = labels_in_order(feats)
        values = score(metric_names, labels, preds)
        ev.metrics.setdefault(split, {})[lang] = values
        ev.examples += len(feats)
        if len(preds) > 1 and len(np.unique(preds)) == 1:
            ev.collapsed.append(f"{split}/{lang}")
        frames.append(pd.DataFrame({"split": split, "lang": lang, "idx": positions(feats), "label": labels,
                                    "pred": preds}))
        emit({"event": "eval_end", "split": split, "lang": lang, "metrics": values})
    ev.seconds = time.perf_counter() - tic
    if frames:
        ev.predictions = pd.concat(frames, ignore_index=True)[PREDICTION_COLUMNS]
    return ev


def metrics_from_predictions(predictions: pd.DataFrame, metric_names: Sequence[str]) -> dict:
    """Recompute `metrics[split][lang]` from a predictions frame (what a reader of the parquet file gets)."""
    out: dict[str, dict[str, dict]] = {}
    for (split, lang), group in predictions.groupby(["split", "lang"], sort=False):
        out.setdefault(split, {})[lang] = score(metric_names, group["label"].to_numpy(), group["pred"].to_numpy())
    return out


__all__ = ["predict", "dev_score", "evaluate_splits", "Evaluation", "metrics_from_predictions", "positions",
           "labels_in_order"]
