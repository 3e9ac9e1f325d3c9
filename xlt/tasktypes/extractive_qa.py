"""Extractive question answering (XQuAD, MLQA, TyDiQA-GoldP): a question and a context in, a span of the context out.

Rows: `id`, `context`, `question`, `answers` (a list of {text, answer_start}; answer_start a character offset
into the context). Local files are SQuAD v1.1 JSON (`data[].paragraphs[].{context, qas[]}`); hub rows come from
`datasets` with `answers` as {text: [...], answer_start: [...]}. Features: question + context windows
(xlt/tasktypes/qa_windows.py). Head: span logits (B, T, 2); loss: the mean of the start and end cross-entropies
over the windows that have a label (padding masked). Decoding: n-best spans over all windows of a question
(xlt/tasktypes/qa_decode.py). Metrics: EM and token F1 as SQuAD v1.1's or MLQA's official script computes them
(xlt/tasktypes/qa_metrics.py), chosen by the task's `normalization` option.

Options (`options:` in a task file): `normalization` (squad | mlqa; default squad), `n_best` (20) and
`max_answer_len` (30 tokens), the decoding limits of XTREME's run_squad.py.

Predictions: `id` (the question id), `label` (the gold answer texts), `pred` (the answer text) and the
question's `em` and `f1` (what the record's metrics average, and what the paired bootstrap resamples).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from xlt.errors import XltError
from xlt.tasktypes import qa_metrics
from xlt.tasktypes.base import TaskType, export_files
from xlt.tasktypes.fields import ascii_int, text_column

DEFAULT_OPTIONS = {"normalization": "squad", "n_best": 20, "max_answer_len": 30}


class AnswerSpanWarning(UserWarning):
    """Gold answers whose text is not found in their context at `answer_start`."""


def read_squad_json(path: Path) -> pd.DataFrame:
    """Rows id, context, question, answers of a SQuAD v1.1 JSON file, in file order. A structure that is not
    SQuAD's is an XltError naming the file and where it breaks (`data[3].paragraphs[0].qas[7]`)."""
    data = load_json(path, "SQuAD JSON")

    def items(value: Any, where: str, what: str) -> list:
        if not isinstance(value, list):
            raise XltError(f"{path} is not SQuAD v1.1 JSON: {where} is a {type(value).__name__}, not a list of "
                           f"{what} (data[].paragraphs[].{{context, qas[].{{id, question, answers}}}})")
        return value

    def field(record: Any, key: str, where: str, what: str) -> Any:
        if not isinstance(record, dict):
            raise XltError(f"{path} is not SQuAD v1.1 JSON: {where} is a {type(record).__name__}, not {what}")
        if key not in record:
            raise XltError(f"{path} is not SQuAD v1.1 JSON: {where} has no `{key}` (each paragraph needs "
                           "`context` and `qas`, each question `id`, `question` and `answers`)")
        return record[key]

    if not isinstance(data, dict) or "data" not in data:
        raise XltError(f"{path} is not SQuAD v1.1 JSON: it needs a top-level `data` list of articles "
                       "(data[].paragraphs[].{context, qas[].{id, question, answers}})")
    rows = []
    for a, article in enumerate(items(data["data"], "data", "articles")):
        where = f"data[{a}]"
        for p, para in enumerate(items(field(article, "paragraphs", where, "an article"), f"{where}.paragraphs",
                                       "paragraphs")):
            at = f"{where}.paragraphs[{p}]"
            context = field(para, "context", at, "a paragraph")
            for q, qa in enumerate(items(field(para, "qas", at, "a paragraph"), f"{at}.qas", "questions")):
                rows.append({"id": field(qa, "id", f"{at}.qas[{q}]", "a question"), "context": context,
                             "question": field(qa, "question", f"{at}.qas[{q}]", "a question"),
                             "answers": field(qa, "answers", f"{at}.qas[{q}]", "a question")})
    return pd.DataFrame(rows, columns=["id", "context", "question", "answers"])


def load_json(path: Path, what: str) -> Any:
    """A JSON file's data; unreadable, malformed or absurdly nested JSON is one XltError naming the file."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except RecursionError:
        raise XltError(f"cannot read {path} as {what}: it is nested too deeply to be {what}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise XltError(f"cannot read {path} as {what}: {exc}; check the file") from None


def _answer_list(value: Any) -> list[dict] | None:
    """[{text, answer_start}, ...] from a SQuAD list of dicts or the hub's {text: [...], answer_start: [...]};
    None if malformed (answer_start must be an integer or ASCII digits: never `true` or `١`)."""
    if isinstance(value, Mapping):
        texts, starts = value.get("text"), value.get("answer_start")
        if texts is None or starts is None or len(texts) != len(starts):
            return None
        value = [{"text": t, "answer_start": s} for t, s in zip(texts, starts)]
    if not isinstance(value, (list, tuple, np.ndarray)):
        return None
    out = []
    for ans in value:
        if not isinstance(ans, Mapping) or not isinstance(ans.get("text"), str):
            return None
        start = ans.get("answer_start")
        if isinstance(start, (int, np.integer)) and not isinstance(start, (bool, np.bool_)):
            start = int(start)
        elif isinstance(start, str) and ascii_int(start.strip()) is not None:
            start = ascii_int(start.strip())
        else:
            return None
        out.append({"text": ans["text"], "answer_start": start})
    return out


def answer_span(context: str, answers: Sequence[Mapping]) -> tuple[int, int]:
    """Character span of the first gold answer, or (-1, -1) if its text is not at its answer_start."""
    if not answers:
        return -1, -1
    text, start = answers[0]["text"], answers[0]["answer_start"]
    if start < 0 or context[start:start + len(text)] != text or not text.strip():
        return -1, -1
    return start, start + len(text)


class ExtractiveQA(TaskType):
    name = "extractive-qa"
    columns = ("id", "context", "question", "answers")
    extensions = {"json": "squad"}
    head = "qa"
    metrics = ("f1", "exact_match")
    default_metrics = ("f1", "exact_match")
    report_metrics = ("f1", "exact_match")
    uses_labels = False
    prediction_columns = ("id", "label", "pred", "em", "f1")
    option_keys = ("normalization", "n_best", "max_answer_len")
    feature_keys = ("max_seq_len", "window_step")
    example_unit = "questions"

    # -- rows ---------------------------------------------------------------------------------------------
    def read_file(self, path, fmt: str) -> pd.DataFrame:
        if fmt != "squad":
            raise XltError(f"type {self.name} reads SQuAD v1.1 JSON files (.json), not {fmt!r}: {path}")
        return read_squad_json(Path(path))

    def num_outputs(self, task: Any) -> int:
        return 2

    def check_options(self, options: Mapping[str, Any]) -> list[str]:
        problems = super().check_options(options)
        norm = options.get("normalization", "squad")
        if norm not in qa_metrics.NORMALIZATIONS:
            problems.append(f"normalization {norm!r} is not one of {', '.join(qa_metrics.NORMALIZATIONS)}")
        for key in ("n_best", "max_answer_len"):
            value = options.get(key, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{key} must be a positive integer, got {value!r}")
        return problems

    def prepare(self, frame: pd.DataFrame, source: Any, task: Any, where: str) -> pd.DataFrame:
        if task is not None and dict(task.options).get("normalization") == "mlqa":
            # before any training: MLQA's script has rules for its 7 languages only
            other = [lang for lang in task.languages if lang not in qa_metrics.MLQA_LANGUAGES]
            if other:
                raise XltError(f"task {task.name!r} scores with MLQA normalisation, which has rules for "
                               f"{', '.join(qa_metrics.MLQA_LANGUAGES)} only, not {', '.join(other)}; use "
                               f"`normalization: squad` in {task.path or 'its task file'}")
        for role in ("id", "context", "question"):   # a null or empty one leaves a question that means nothing
            column = source.column(role) if source is not None else role
            frame[role] = text_column(frame[role].tolist(), where, role, column)
            empty = np.flatnonzero((frame[role].str.strip() == "").to_numpy())
            if len(empty):
                raise XltError(f"row {empty[0]} of {where} has an empty {role} ({column!r}; "
                               f"{len(empty)} row(s) in all); every question needs an id, a context and a question")
        answers = [_answer_list(v) for v in frame["answers"]]
        bad = [i for i, a in enumerate(answers) if a is None]
        if bad:
            raise XltError(f"{len(bad)} row(s) of {where} have malformed `answers` (want a list of {{text, "
                           f"answer_start}} or {{text: [...], answer_start: [...]}}); first: question "
                           f"{frame['id'].iloc[bad[0]]!r}: {frame['answers'].iloc[bad[0]]!r}")
        empty = [i for i, a in enumerate(answers) if not a]
        if empty:
            raise XltError(f"{len(empty)} question(s) of {where} have no gold answer (first: "
                           f"{frame['id'].iloc[empty[0]]!r}); SQuAD v2-style unanswerable questions are not "
                           "supported: remove them or give them answers")
        blank = [i for i, a in enumerate(answers) if any(not x["text"].strip() for x in a)]
        if blank:
            raise XltError(f"{len(blank)} question(s) of {where} have an empty gold answer (first: question "
                           f"{frame['id'].iloc[blank[0]]!r}); an empty answer would count an empty prediction as "
                           "exact: give the answer text or remove the question")
        dup = frame["id"].duplicated()
        if dup.any():
            raise XltError(f"question ids repeat in {where} ({int(dup.sum())} duplicates, first "
                           f"{frame['id'][dup].iloc[0]!r}); ids must be unique (predictions are keyed by them)")
        frame["answers"] = answers
        total = sum(len(a) for a in answers)
        mismatched = [(frame["id"].iloc[i], a["text"], c[a["answer_start"]:a["answer_start"] + len(a["text"])])
                      for i, (c, al) in enumerate(zip(frame["context"], answers)) for a in al
                      if c[a["answer_start"]:a["answer_start"] + len(a["text"])] != a["text"] or a["answer_start"] < 0]
        frame.attrs["answer_spans"] = {"answers": total, "mismatched": len(mismatched)}
        if mismatched:
            qid, text, found = mismatched[0]
            warnings.warn(f"{where}: {len(mismatched)} of {total} gold answers are not found in their context at "
                          f"answer_start (first: question {qid!r}: {text!r} but the context has {found!r}). They "
                          "still count as gold answers for EM/F1; a question whose first answer is one of them is "
                          "left out of the training loss", AnswerSpanWarning, stacklevel=2)
        return frame

    # -- features and training ------------------------------------------------------------------------------
    def featurize(self, split, tokenizer: Any, params: Mapping[str, Any]):
        from xlt.tasktypes.qa_windows import featurize_windows

        frame = split.frame
        spans = np.array([answer_span(c, a) for c, a in zip(frame["context"], frame["answers"])],
                         dtype=np.int64).reshape(-1, 2)
        feats = featurize_windows(frame["question"].tolist(), frame["context"].tolist(), spans[:, 0], spans[:, 1],
                                  tokenizer, int(params["max_seq_len"]), int(params["window_step"]))
        opts = {**DEFAULT_OPTIONS, **dict(split.options)}
        feats.meta.update(n_best=int(opts["n_best"]), max_answer_len=int(opts["max_answer_len"]),
                          unlabelled_questions=int((spans[:, 0] < 0).sum()))
        return feats

    def _masked(self, logits, batch: dict):
        mask = batch["attention_mask"].to(logits.device).bool()
        from xlt.tasktypes.qa_decode import MASKED

        return logits.float().masked_fill(~mask[..., None], MASKED)

    def loss(self, logits, batch: dict):
        import torch.nn.functional as F

        logits = self._masked(logits, batch)
        starts, ends = batch["start_positions"], batch["end_positions"]
        labelled = (starts >= 0).sum().clamp(min=1)   # windows of unmatched answers (-100) are left out
        loss = F.cross_entropy(logits[..., 0], starts, ignore_index=-100, reduction="sum") + \
            F.cross_entropy(logits[..., 1], ends, ignore_index=-100, reduction="sum")
        return loss / (2 * labelled)

    def sift_logits(self, logits, batch: dict):
        """Start and end distributions of every window: (2B, T)."""
        logits = self._masked(logits, batch)
        return logits.permute(0, 2, 1).reshape(-1, logits.shape[1])

    # -- evaluation -----------------------------------------------------------------------------------------
    def decode(self, logits, batch: dict, feats) -> tuple:
        from xlt.tasktypes.qa_decode import best_spans

        n_best = int(feats.meta.get("n_best", DEFAULT_OPTIONS["n_best"]))
        max_len = int(feats.meta.get("max_answer_len", DEFAULT_OPTIONS["max_answer_len"]))
        return (batch["row"].numpy(), *best_spans(logits, batch["char_start"], batch["char_end"], n_best, max_len))

    def predictions(self, split, feats, decoded: Sequence[tuple]) -> pd.DataFrame:
        from xlt.tasktypes.qa_decode import answers

        frame = split.frame
        preds = answers(feats.index, decoded, frame["context"].tolist())
        return self._frame(split, preds)

    def _frame(self, split, preds: Sequence[str | None]) -> pd.DataFrame:
        """idx, id, label, pred, em, f1 for the questions of `split` (a None prediction: unanswered, 0/0)."""
        frame = split.frame
        golds = [[a["text"] for a in al] for al in frame["answers"]]
        norm = dict(split.options).get("normalization", DEFAULT_OPTIONS["normalization"])
        ems, f1s = qa_metrics.score_answers(preds, golds, norm, split.lang)
        return pd.DataFrame({"idx": np.arange(len(frame)), "id": frame["id"].to_numpy(), "label": golds,
                             "pred": list(preds), "em": ems, "f1": f1s})

    def statistics(self, predictions: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"em": predictions["em"].astype(float), "f1": predictions["f1"].astype(float)},
                            index=predictions.index)

    def metric_formulas(self, task: Any = None) -> dict[str, dict]:
        return {"f1": {"mean": "f1"}, "exact_match": {"mean": "em"}}

    def collapsed(self, predictions: pd.DataFrame) -> bool:
        return len(predictions) > 1 and predictions["pred"].nunique(dropna=False) == 1

    def external_predictions(self, split, path) -> pd.DataFrame:
        """`{question id: answer text}` JSON, the file the official scripts read. A question missing from it
        scores 0 (as the scripts score it); ids that are not questions of the split are ignored; both counts
        are in `frame.attrs["notes"]`."""
        path = Path(path)
        data = load_json(path, 'JSON predictions ({"question id": "answer"})')
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise XltError(f"{path} must be one JSON object mapping each question id to its answer text "
                           "(a string), the format of the official SQuAD and MLQA scripts")
        ids = split.frame["id"].tolist()
        known = set(ids)
        if not known & set(data):
            raise XltError(f"none of the {len(data)} ids in {path} is a question of {split.task} "
                           f"{split.split}-{split.lang} (e.g. {next(iter(data), '(empty file)')!r} vs "
                           f"{ids[0]!r}); check --lang and --split")
        frame = self._frame(split, [data.get(i) for i in ids])
        notes = []
        missing = sum(i not in data for i in ids)
        extra = sum(k not in known for k in data)
        if missing:
            notes.append(f"{missing} of {len(ids)} questions have no prediction and score 0 (as the official "
                         "scripts score them)")
        if extra:
            notes.append(f"{extra} ids in {path.name} are not questions of this split and were ignored")
        frame.attrs["notes"] = notes
        return frame

    def export_predictions(self, predictions: pd.DataFrame, out_dir) -> list[Path]:
        """`<split>-<lang>.json` per (split, language): {question id: answer}, as the official scripts read."""
        paths = []
        for path, group in export_files(predictions, out_dir, "json"):
            answers = {str(i): ("" if p is None else str(p)) for i, p in zip(group["id"], group["pred"])}
            path.write_text(json.dumps(answers, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
            paths.append(path)
        return paths

    def metric_caption(self, task_info: Mapping[str, Any]) -> str:
        norm = (task_info.get("options") or {}).get("normalization", "squad")
        metric = str(task_info.get("primary_metric", "f1"))
        what = {"f1": "token F1", "exact_match": "exact match"}.get(metric, metric)
        if norm == "mlqa":
            return f"{what} as MLQA's mlqa_evaluation_v1.py computes it (per-language normalisation)"
        return f"{what} as SQuAD v1.1's evaluate-v1.1.py computes it"


TASK_TYPE = ExtractiveQA()
