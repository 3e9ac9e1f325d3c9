"""The runner's side of transfer protocols: the data each model of a run reads, its training set, and one
evaluation out of several models'.

    data = read_models(task, plan, data_dir, spec)    # ModelsData: parts, devs, what each (split, lang) predicts
    feats = mix([train_en, train_fr, ...])            # one Features: the parts shuffled together by `batches`
    ev = merge([ev_en, ev_fr, ...], splits, langs)    # one Evaluation, in the task's split and language order

What a protocol trains and predicts is planned in xlt.protocols (`Plan`, `ModelPlan`) from what
xlt.tasks.protocol_data finds; xlt/runner.py follows the plan model by model and calls these. `--max-train-samples
N` keeps the first N examples of every training part (each language's), `--max-eval-samples N` the first N of
every split predicted or selected on (for translate-test: of the original and of its translation alike); the
shots of few-shot are drawn from the whole split the task file names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from xlt.data import Features
from xlt.evaluate import Evaluation
from xlt.protocols import FEW_SHOT, ORIGINAL, DataRef, Plan
from xlt.tasks.protocol_data import aligned, draw_shots, read


@dataclass
class ModelsData:
    parts: dict[str, list[Any]] = field(default_factory=dict)     # model key -> its training SplitData parts
    devs: dict[str, Any] = field(default_factory=dict)            # model key -> SplitData it is selected on
    eval_data: dict[tuple[str, str], Any] = field(default_factory=dict)   # (split, lang) -> SplitData predicted
    models: dict[str, dict] = field(default_factory=dict)         # the record's protocol.models
    drawn: dict[str, dict] = field(default_factory=dict)          # few-shot: language -> the rows drawn


def part_info(split: Any, ref: DataRef) -> dict[str, Any]:
    return {"split": ref.split, "lang": ref.lang, "kind": ref.kind, "n": len(split), "origin": split.origin}


def read_models(task: Any, plan: Plan, data_dir: Any, spec: Any, splits: Sequence[str], trains: bool = True
                ) -> ModelsData:
    """Every model's training parts and dev split (when the type trains) and every (split, language) predicted,
    each read once. `eval_data` comes in the order of `splits` then the plan's languages, as zero-shot runs
    always ordered it."""
    out, cache = ModelsData(), {}

    def get(ref: DataRef, limit: int | None):
        key = (ref, limit)
        if key not in cache:
            cache[key] = read(task, ref, data_dir).head(limit)
        return cache[key]

    for model in plan.models:
        info: dict[str, Any] = {"train": [], "selected_on": None, "continues": model.start, "shots": model.shots,
                                "languages": model.languages}
        if trains:
            parts = []
            for ref in model.train:
                if ref.kind == FEW_SHOT:
                    shots, rows = draw_shots(read(task, ref, data_dir), model.shots, spec.seed)
                    pool = shots.origin
                    out.drawn[ref.lang] = {"split": ref.split, "origin": pool, "rows": rows,
                                           **({"ids": shots.frame["id"].astype(str).tolist()}
                                              if "id" in shots.frame.columns else {})}
                    parts.append(shots)
                else:
                    parts.append(get(ref, spec.max_train_samples))
                info["train"].append(part_info(parts[-1], ref))
            out.parts[model.key] = parts
            if model.select is not None:
                out.devs[model.key] = get(model.select, spec.max_eval_samples)
                info["selected_on"] = part_info(out.devs[model.key], model.select)
        out.models[model.key] = info
    predicted = {(ref.split, ref.lang): ref for model in plan.models for ref in model.predicts}
    languages = list(dict.fromkeys(ref.lang for model in plan.models for ref in model.predicts))
    for split in splits:
        for lang in languages:
            ref = predicted.get((split, lang))
            if ref is None:
                continue
            original = get(DataRef(split, lang), spec.max_eval_samples)
            out.eval_data[(split, lang)] = original if ref.kind == ORIGINAL else \
                aligned(original, get(ref, spec.max_eval_samples))
    return out


def mix(parts: Sequence[Features]) -> Features:
    """One training set out of several (a source split and its translations): rows of every part, each keeping
    its tokens and row arrays; `xlt.data.batches` then shuffles and length-buckets them together. `index`
    is made unique across parts (part p's examples follow part p-1's)."""
    if len(parts) == 1:
        return parts[0]
    lengths = np.concatenate([p.lengths for p in parts])
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    names = [set(p.tokens) for p in parts]
    rows = [set(p.rows) for p in parts]
    if any(n != names[0] for n in names) or any(r != rows[0] for r in rows):
        raise ValueError("training parts of one model must have the same feature arrays")
    tokens = {name: np.concatenate([p.tokens[name] for p in parts]) for name in parts[0].tokens}
    shift = np.cumsum([0] + [p.num_examples for p in parts[:-1]])
    row_arrays = {name: np.concatenate([p.rows[name] + (s if name == "index" else 0) for p, s in zip(parts, shift)])
                  for name in parts[0].rows}
    meta = {"examples": int(sum(p.num_examples for p in parts)),
            "parts": [{k: p.meta.get(k) for k in ("split", "lang", "origin", "examples")} for p in parts]}
    return Features(offsets, tokens, row_arrays, dict(parts[0].pad), meta)


def merge(evaluations: Sequence[Evaluation], splits: Sequence[str], languages: Sequence[str]) -> Evaluation:
    """The evaluations of a run's models as one: metrics and predictions in the task's split order, then its
    language order (as one model's evaluation of every language gives them), times and counts summed."""
    if len(evaluations) == 1:
        return evaluations[0]
    rank = {(s, l): (i, j) for i, s in enumerate(splits) for j, l in enumerate(languages)}
    metrics = {(split, lang): values for ev in evaluations for split, by_lang in ev.metrics.items()
               for lang, values in by_lang.items()}
    out = Evaluation()
    for split, lang in sorted(metrics, key=lambda key: rank.get(key, (len(splits), len(languages)))):
        out.metrics.setdefault(split, {})[lang] = metrics[(split, lang)]
    frames = [ev.predictions for ev in evaluations if ev.predictions is not None and len(ev.predictions)]
    if frames:
        preds = pd.concat(frames, ignore_index=True)
        order = [rank.get((s, l), (len(splits), len(languages))) for s, l in zip(preds["split"], preds["lang"])]
        keys = pd.DataFrame(order, columns=["_s", "_l"], index=preds.index)
        stats = sorted(c for c in preds.columns if c.startswith("stat_"))
        head = [c for c in preds.columns if not c.startswith("stat_")]
        preds = preds.assign(_s=keys["_s"], _l=keys["_l"]).sort_values(["_s", "_l"], kind="stable")
        out.predictions = preds[head + stats].reset_index(drop=True)
    else:
        out.predictions = evaluations[0].predictions
    for ev in evaluations:
        out.seconds += ev.seconds
        out.examples += ev.examples
        out.rows += ev.rows
        for unit, n in ev.counts.items():
            out.counts[unit] = out.counts.get(unit, 0) + n
        out.collapsed += ev.collapsed
        out.calibration.update(ev.calibration)
    return out


def missing_note(missing: dict[str, list[str]]) -> str:
    """One line naming each language left out of a protocol's models and what it lacks."""
    return "; ".join(f"{lang}: no {', '.join(dict.fromkeys(what))}" for lang, what in missing.items())


__all__ = ["ModelsData", "read_models", "mix", "merge", "missing_note", "part_info"]
