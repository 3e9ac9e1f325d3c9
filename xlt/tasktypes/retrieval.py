"""Sentence retrieval (Tatoeba, BUCC 2018): a pretrained or fine-tuned encoder embeds sentences, and their
translations are found by cosine similarity. Nothing is trained (`trains = False`).

Rows of one (split, language) (`xlt.tasktypes.retrieval_rows`): the language's sentences (`sentence`,
`sentence_id`) and the English ones of the task's `source_lang` (`pivot`, `pivot_id`), side by side, and each
sentence's gold translation (`gold`, a pivot id). Tatoeba's two sides are aligned (line i translates line i);
BUCC's are two corpora with a gold file. Features: every sentence of both sides is one model row (`side` 0 or
1), length-bucketed like every type's. The head is the `encoder`: one layer's hidden states (the `layer`
hyperparameter), pooled per batch into one vector (`pooling`: mean or cls). Then `predictions` searches:

- `search: top1` (Tatoeba): each query's most cosine-similar sentence on the other side. `queries: sentence`
  (issue 23: each sentence of the language searches the English side) or `queries: pivot` (XTREME's
  evaluate_retrieval.py searches the language's side with each English sentence). Metric: accuracy.
- `search: mine` (BUCC): ratio-margin mining over the `neighbourhood` (4) nearest neighbours in both
  directions, one-to-one; `calibrate` chooses each language's threshold on `threshold_split` (dev) and
  extracts the pairs scoring at least that much in every split. Metrics: f1, precision, recall.

Predictions: one row per query sentence (top1) or per sentence of the language's side (mine): `idx` (its
line), `id`, `label` (its gold translation's id, "" for none), `pred` (the retrieved or mined sentence's id,
"" for none), `score` (cosine or margin), `extracted` (counted as a prediction). Every metric recomputes from
them: per row correct, tp, fp, fn. docs/retrieval.md has XTREME's choices and where xlt differs.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from xlt.errors import XltError
from xlt.tasktypes import retrieval_rows as R
from xlt.tasktypes.base import TaskType, export_files

SEARCHES = ("top1", "mine")
QUERIES = ("sentence", "pivot")
DEFAULT_OPTIONS = {"search": "top1", "queries": "sentence", "neighbourhood": 4, "threshold_split": "dev"}


def options_of(options: Mapping[str, Any]) -> dict[str, Any]:
    return {**DEFAULT_OPTIONS, **dict(options)}


class Retrieval(TaskType):
    name = "retrieval"
    columns = R.COLUMNS
    optional_columns = R.OPTIONAL_COLUMNS
    file_parts = R.PARTS
    part_formats = R.PART_FORMATS
    extensions = {"tsv": "tsv", "csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}
    head = "encoder"
    metrics = ("accuracy", "f1", "precision", "recall")
    default_metrics = ("accuracy",)
    report_metrics = ("accuracy", "f1")
    uses_labels = False
    prediction_columns = ("id", "label", "pred", "score", "extracted")
    option_keys = tuple(DEFAULT_OPTIONS)
    feature_keys = ("max_seq_len", "pooling")
    example_unit = "sentences"
    trains = False

    # -- plan, rows ----------------------------------------------------------------------------------------
    def check_options(self, options: Mapping[str, Any]) -> list[str]:
        problems = super().check_options(options)
        opts = options_of(options)
        if opts["search"] not in SEARCHES:
            problems.append(f"search {opts['search']!r} is not one of {', '.join(SEARCHES)}")
        if opts["queries"] not in QUERIES:
            problems.append(f"queries {opts['queries']!r} is not one of {', '.join(QUERIES)}")
        k = opts["neighbourhood"]
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            problems.append(f"neighbourhood {k!r} must be a positive integer (XTREME's margin: 4)")
        if not isinstance(opts["threshold_split"], str) or not opts["threshold_split"]:
            problems.append(f"threshold_split {opts['threshold_split']!r} must name a split")
        return problems

    def num_outputs(self, task: Any) -> None:
        return None     # the encoder head has no width of its own

    def head_options(self, task: Any, hparams: Any) -> dict[str, Any]:
        if hparams.layer is None:
            raise XltError(f"task {task.name!r} embeds one layer's hidden states, but no layer was chosen: the "
                           "model's config.json was not found to choose XTREME's; pass --set layer=N (0 = the "
                           "embedding output; XTREME takes 8 of 12 layers)")
        return {"output_layer": hparams.layer}

    def read_parts(self, paths: Mapping[str, Any], fmt: str) -> pd.DataFrame:
        return R.read_parts(paths, fmt)

    def prepare(self, frame: pd.DataFrame, source: Any, task: Any, where: str) -> pd.DataFrame:
        return R.prepare(frame, where)

    # -- features and embeddings ---------------------------------------------------------------------------
    def featurize(self, split, tokenizer: Any, params: Mapping[str, Any], chunk: int = 2048):
        from xlt.data import Features, pad_id, ragged

        sides = R.sides(split.frame)
        texts = [t.strip() for t in sides.sentences + sides.pivots]   # XTREME strips each line
        ids, types = [], []
        for start in range(0, len(texts), chunk):
            enc = tokenizer(texts[start:start + chunk], truncation=True, max_length=int(params["max_seq_len"]),
                            padding=False, return_attention_mask=False)
            ids += enc["input_ids"]
            if enc.get("token_type_ids") is not None:
                types += enc["token_type_ids"]
        flat, offsets = ragged(ids, np.int32)
        tokens = {"input_ids": flat}
        if types:
            tokens["token_type_ids"] = ragged(types, np.int8)[0]
        n_s, n_p = len(sides.sentences), len(sides.pivots)
        rows = {"index": np.concatenate([np.arange(n_s), np.arange(n_p)]).astype(np.int64),
                "side": np.repeat(np.array([0, 1], dtype=np.int8), [n_s, n_p])}
        return Features(offsets, tokens, rows, {"input_ids": pad_id(tokenizer), "token_type_ids": 0},
                        meta={"pooling": params["pooling"]})

    def decode(self, hidden, batch: dict, feats) -> tuple[np.ndarray, np.ndarray]:
        from xlt.tasktypes.retrieval_pooling import pool

        embeddings = pool(hidden, batch["attention_mask"].to(hidden.device), feats.meta["pooling"])
        return batch["row"].numpy(), embeddings.cpu().numpy()

    # -- search, decisions across splits -------------------------------------------------------------------
    def predictions(self, split, feats, decoded: Sequence[tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
        sides = R.sides(split.frame)
        sentence_emb, pivot_emb = R.side_embeddings(feats, decoded)
        opts = options_of(split.options)
        if opts["search"] == "mine":
            rows = R.mine_rows(sides, sentence_emb, pivot_emb, opts["neighbourhood"])
            rows.attrs["threshold_split"] = opts["threshold_split"]
            return rows
        return R.top1_rows(sides, sentence_emb, pivot_emb, opts["queries"])

    def calibrate(self, predictions: Mapping[tuple[str, str], pd.DataFrame]
                  ) -> tuple[dict[tuple[str, str], pd.DataFrame], dict[str, Any]]:
        """Mining: each language's threshold chosen on its `threshold_split` rows (XTREME's bucc_optimize on the
        gold pairs) and applied to each of its splits; the record keeps the thresholds."""
        from xlt.tasktypes.retrieval_bucc import extract, mined_correct
        from xlt.tasktypes.retrieval_search import choose_threshold

        mined = {key: frame for key, frame in predictions.items() if "threshold_split" in frame.attrs}
        if not mined:
            return dict(predictions), {}
        on = next(iter(mined.values())).attrs["threshold_split"]
        thresholds: dict[str, float] = {}
        out = dict(predictions)
        for (split, lang), frame in mined.items():
            if lang not in thresholds:
                chosen = mined.get((on, lang))
                if chosen is None:
                    raise XltError(f"the extraction threshold of {lang} is chosen on split {on!r}, which was not "
                                   f"evaluated for {lang} (only {split!r}); evaluate {on!r} too (its gold file is "
                                   "needed)")
                scores, correct, n_gold = mined_correct(chosen)
                if n_gold == 0:
                    raise XltError(f"split {on!r} of {lang} has no gold pair to choose the threshold with (were "
                                   "they cut by --max-eval-samples?)")
                thresholds[lang] = choose_threshold(scores, correct, n_gold)
            out[(split, lang)] = extract(frame, thresholds[lang])
            out[(split, lang)].attrs.clear()
        return out, {"threshold_split": on, "thresholds": thresholds,
                     "rule": "bucc_optimize: the midpoint after the F1 peak on that split's gold; extract score >= it"}

    # -- scores ---------------------------------------------------------------------------------------------
    def statistics(self, predictions: pd.DataFrame) -> pd.DataFrame:
        label, pred = predictions["label"].to_numpy(), predictions["pred"].to_numpy()
        extracted = predictions["extracted"].to_numpy(dtype=bool)
        gold = label != ""
        hit = extracted & gold & (pred == label)
        return pd.DataFrame({"correct": hit.astype(float), "tp": hit.astype(float),
                             "fp": (extracted & ~hit).astype(float), "fn": (gold & ~hit).astype(float)},
                            index=predictions.index)

    def metric_formulas(self, task: Any = None) -> dict[str, dict]:
        return {"accuracy": {"mean": "correct"}, "f1": {"f1": ["tp", "fp", "fn"]},
                "precision": {"precision": ["tp", "fp"]}, "recall": {"recall": ["tp", "fn"]}}

    def collapsed(self, predictions: pd.DataFrame) -> bool:
        chosen = predictions.loc[predictions["extracted"].to_numpy(dtype=bool), "pred"]
        return len(chosen) > 1 and chosen.nunique() == 1

    def metric_caption(self, task_info: Mapping[str, Any]) -> str:
        opts = options_of(task_info.get("options") or {})
        metric = str(task_info.get("primary_metric", "accuracy"))
        if metric == "accuracy":
            who = "each sentence searches the English side" if opts["queries"] == "sentence" else \
                "each English sentence searches the language's side"
            return f"top-1 accuracy of cosine nearest neighbours ({who})"
        return (f"{metric} of the mined pairs (ratio margin over {opts['neighbourhood']} neighbours, threshold chosen "
                f"on {opts['threshold_split']})")

    # -- other systems ------------------------------------------------------------------------------------------
    def external_predictions(self, split, path) -> pd.DataFrame:
        """Top-1 search: one retrieved index per line (XTREME's `test-<lang>.tsv`: line i answers query i, an
        index into the searched side's file). Mining: the extracted pairs, `xx_id<TAB>en_id` per line (what
        XTREME's bucc_extract writes)."""
        opts = options_of(split.options)
        sides = R.sides(split.frame)
        if opts["search"] == "mine":
            return R.external_pairs(sides, path)
        return R.external_indices(sides, path, opts["queries"])

    def export_predictions(self, predictions: pd.DataFrame, out_dir) -> list:
        """`<split>-<lang>.tsv` in the layout `external_predictions` reads: retrieved indices, one per query
        in query order, when every row is a query answered by position (top-1 search); else the extracted
        pairs, one `id<TAB>pred` line each, in mining order."""
        paths = []
        for path, group in export_files(predictions, out_dir, "tsv"):
            paths.append(path)
            by_position = group["extracted"].all() and (group["id"] == group["idx"].astype(str)).all()
            if by_position:
                lines = group.sort_values("idx")["pred"].astype(str).tolist()
            else:
                chosen = group[group["extracted"].to_numpy(dtype=bool)]
                lines = [f"{i}\t{p}" for i, p in zip(chosen["id"], chosen["pred"])]
            path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        return paths


TASK_TYPE = Retrieval()
