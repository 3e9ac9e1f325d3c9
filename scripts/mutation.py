"""Mutation testing of xlt's core with cosmic-ray: do the tests catch plausible one-line bugs?

    python scripts/mutation.py                      # every core module, 2 at a time
    python scripts/mutation.py spec metrics         # some of them
    python scripts/mutation.py --list               # the modules, their scopes and tests
    python scripts/mutation.py --report --survivors train   # after a run: each surviving mutant's diff
    python scripts/mutation.py --report --markdown  # the table, survivors and equivalents for docs/testing.md

A development check, not part of CI: 1,326 mutants, each running its module's tests in a fresh process (on
the shared 2-core machine under a load of 15-20, one train mutant took about 40 s). For each module below,
cosmic-ray (https://github.com/sixty-north/cosmic-ray) mutates the functions in its scope one mutation at a
time and runs only the tests that cover that module (`pytest -x`, so a killed mutant stops at its first
failing test). Everything happens in a copy of the working tree under --workdir: cosmic-ray writes each
mutant into the source file on disk, and the copy keeps that away from the tree you are editing.

Mutation operators: cosmic-ray's core set, without the ones that make implausible code rather than plausible
bugs: arithmetic swapped for bitwise/shift/power operators (`a + b` -> `a << b`), `|` (only type unions in
annotations, which `from __future__ import annotations` never evaluates, and dict/set unions), and `==`/`<`
swapped for `is`/`is not` (identity of small ints and interned strings: equivalent or undefined).

The score counts a mutant as killed when a test fails, errors or times out; survivors listed in EQUIVALENT
(no behaviour can tell them apart from the original; each with its reason) are excluded from the score.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEFAULT_WORKDIR = Path(os.environ.get("TMPDIR", "/tmp")) / "xlt-mutation"

EXCLUDED_OPERATORS = [
    r"core/ReplaceBinaryOperator_.*_(BitOr|BitAnd|BitXor|LShift|RShift|Pow)$",
    r"core/ReplaceBinaryOperator_(BitOr|BitAnd|BitXor|LShift|RShift|Pow)_.*",
    r"core/ReplaceComparisonOperator_(Eq|NotEq|Lt|LtE|Gt|GtE)_(Is|IsNot)$",
    r"core/ReplaceComparisonOperator_(Is|IsNot)_(Eq|NotEq|Lt|LtE|Gt|GtE)$",
]


@dataclass(frozen=True)
class Module:
    """A source file, the parts of it that are mutated, and the tests that cover them."""

    name: str
    path: str
    scope: tuple            # function/method names ("Class.method"), or (name, first-line text, last-line text)
    tests: tuple[str, ...]
    pytest_args: tuple[str, ...] = ()


TAGGING_TESTS = "tests/test_token_classification.py"
MODULES = [
    Module("spec", "xlt/spec.py",
           ("Hyperparams.per_step_batch", "check_hparams", "parse_sets", "RunSpec.__post_init__",
            "RunSpec.to_dict", "RunSpec.from_dict", "RunSpec.identity", "RunSpec.run_id"),
           ("tests/test_pin_spec.py", "tests/test_tasktypes.py::test_out_of_range_hyperparameters_are_refused",
            "tests/test_tasktypes.py::test_out_of_range_spec_fields_are_refused")),
    Module("recipes", "xlt/recipes.py", ("ModelRule.applies", "model_config", "effective_hparams"),
           ("tests/test_pin_spec.py", "tests/test_pin_recipes.py",
            "tests/test_tasktypes.py::test_two_copies_of_one_checkpoint_get_the_same_effective_spec",
            "tests/test_tasktypes.py::test_dry_run_says_where_each_value_came_from")),
    # round 3 (issue 22): the one spec builder and the one head table
    Module("build", "xlt/recipes.py",
           ("normalise_languages", "normalise_splits", "evaluated_splits", "evaluated_languages",
            "effective_data_dir", "build_spec"),
           ("tests/test_spec_builder.py", "tests/test_pin_spec.py", "tests/test_pin_core.py")),
    Module("heads", "xlt/models/heads.py", ("_logits", "_spans", "_hidden", "Head.auto_class", "get_head",
                                            "head_width"),
           ("tests/test_checkpoint.py", "tests/test_registry.py", "tests/test_pin_core.py")),
    # round 3 (issue 24): xlt eval's label matching and the reordered logits
    Module("labelmatch", "xlt/labelmatch.py",
           ("key", "_ascii_id", "LabelMatch.unused", "LabelMatch.never_predicted", "LabelMatch.to_record",
            "match_labels", "_find", "_same", "_same_key", "_same_meaning", "_task_id"),
           ("tests/test_labelmatch.py", "tests/test_eval.py")),
    Module("label-view", "xlt/models/label_view.py", ("LabelView.__init__", "LabelView.forward"),
           ("tests/test_labelmatch.py", "tests/test_eval.py", "tests/test_pin_core.py")),
    # round 3 (issue 23): retrieval's exact search and margin mining; (issue 25) the protocol registry's planning
    Module("retrieval-search", "xlt/tasktypes/retrieval_search.py",
           ("_merge", "top1_accuracy", "margin_scores", "choose_threshold", "precision_recall_f1"),
           ("tests/test_retrieval_search.py",)),
    Module("protocols", "xlt/protocols.py",
           ("check_shots", "few_shot_hparams", "shot_rows", "plan_models"),
           ("tests/test_protocols.py",)),
    Module("metrics", "xlt/metrics.py", ("accuracy", "macro_f1", "score"),
           ("tests/test_pin_metrics.py", "tests/test_metrics.py")),
    Module("statistics", "xlt/report/statistics.py",
           ("_missing", "macro_average", "transfer_gap", "aggregate", "Bootstrap.significant", "_resampled_totals",
            "paired_bootstrap"),
           ("tests/test_pin_report.py", "tests/test_report.py")),
    Module("tables", "xlt/report/tables.py",
           ("Table.best", "Table.is_best", "per_run_table", "example_statistics", "_significance"),
           ("tests/test_pin_report.py", "tests/test_report.py", "tests/test_report_types.py")),
    Module("sources", "xlt/tasks/sources.py",
           ("local_candidates", "local_file", "available_splits", "DataPlan.revision",
            "plan_data", "load_split"),
           ("tests/test_pin_tasks.py", "tests/test_pin_sources.py", "tests/test_tasks.py")),
    Module("taskspec", "xlt/tasks/taskspec.py",
           ("Source.matches", "Source.source_split", "Source.source_lang", "Source.local_path", "TaskSpec.splits",
            "TaskSpec.source_for", "TaskSpec.check_split_lang"),
           ("tests/test_pin_tasks.py", "tests/test_pin_sources.py", "tests/test_tasks.py")),
    Module("pair", "xlt/tasktypes/pair_classification.py",
           ("_label_ids", "PairClassification.prepare", "PairClassification.decode",
            "PairClassification.predictions", "PairClassification.statistics",
            ),
           ("tests/test_pin_tasks.py", "tests/test_pin_pair.py", "tests/test_pin_report.py")),
    Module("tagging", "xlt/tasktypes/token_classification.py",
           ("_tag_ids", "TokenClassification.prepare", "TokenClassification.decode",
            "TokenClassification.predictions", "TokenClassification.statistics",
            ),
           ("tests/test_pin_tagging.py", TAGGING_TESTS), ("-k", "not from_scratch")),
    Module("spans", "xlt/tasktypes/spans.py",
           ("split_tag", "_end_of_chunk", "_start_of_chunk", "_Joined.__init__", "_Joined.word_positions",
            "_chunk_keys", "_keys", "chunks", "sentence_counts"),
           ("tests/test_pin_tagging.py", TAGGING_TESTS), ("-k", "span_counts or chunks or statistics or pin")),
    Module("alignment", "xlt/tasktypes/alignment.py",
           ("special_tokens", "encode", "step_size", "windows", "_owners", "_with_specials"),
           ("tests/test_pin_tagging.py", TAGGING_TESTS),
           ("-k", "gold_tags or owned or without_subwords or longest_zh or pin")),
    Module("qa-metrics", "xlt/tasktypes/qa_metrics.py",
           ("normalize_squad", "mixed_segmentation", "normalize_mlqa", "_normalizer", "exact_match", "f1",
            "score_answer", "score_answers"),
           ("tests/test_pin_qa.py", "tests/test_qa_metrics.py")),
    Module("qa-decode", "xlt/tasktypes/qa_decode.py", ("best_spans", "answers"),
           ("tests/test_pin_qa.py", "tests/test_extractive_qa.py"),
           ("-k", "decoded or without_spaces or lone_piece or decoding_limits or pin")),
    Module("data", "xlt/data.py",
           ("Features.lengths", "Features.select", "Features.subset", "tokenizer_fingerprint", "cache_path",
            "featurize", "batch_order", "collate", "num_batches", "restore_order"),
           ("tests/test_pin_data.py", "tests/test_data.py")),
    Module("train-parts", "xlt/train.py",
           ("param_groups", "symmetric_kl", "Sift.__init__", "Sift._hook", "Sift.loss", "Sift.remove"),
           ("tests/test_pin_train.py", "tests/test_train.py"), ("-m", "not slow", "-k", "not freed_memory")),
    # fit() in two halves, so that two processes share its mutants: set-up, resume and the step; the loop
    Module("train-fit", "xlt/train.py", (("fit", "loss_fn = loss_fn or", "result.sift_losses.append"),),
           ("tests/test_pin_train.py", "tests/test_train.py"), ("-m", "not slow", "-k", "not freed_memory")),
    Module("train-loop", "xlt/train.py", (("fit", 'emit({"event": "train_start"', "return result"),),
           ("tests/test_pin_train.py", "tests/test_train.py"), ("-m", "not slow", "-k", "not freed_memory")),
    Module("runner", "xlt/runner.py",
           ("checkpoint_dir",
            ("read_data", "src = task.source_lang", 'st.info["env"]["data_revision"] = plan.revision'),
            "featurize", "predicted",
            "run"),
           ("tests/test_pin_runner.py",
            "tests/test_runner.py::test_a_failed_forced_rerun_never_replaces_a_completed_record",
            "tests/test_runner.py::test_failures_come_back_as_failed_records",
            "tests/test_runner.py::test_resume_skips_a_completed_run_and_continues_a_killed_one")),
]

# Surviving mutants that no behaviour can distinguish from the original: (module, operator, the original
# source line, stripped, the reason). Matched on the line's text so they survive edits elsewhere.
NUMPY_NEGATIVE = "numpy.reshape treats any negative size as the one inferred dimension: reshape(-2) is reshape(-1)"
KIND = ("Hyperparams' field types are the strings 'float', 'int' and 'bool' (postponed annotations); on those three "
        "the ordering comparison selects the same branch as ==")
BACKEND_PATHS = ("_backend_state's fast path (cut the serialized text at \"added_tokens\") and its JSON path both "
                 "drop truncation and padding and keep the rest; which one runs changes the fingerprint's value, "
                 "never which tokenizers share one (tokenizers always writes \"added_tokens\" after them)")
SAME_CODE = ("{} changes every key's value but not which keys are equal: keys are only compared with keys "
             "computed by the same code (caches of another xlt version are simply not found)")
TWO_VALUES = "{0} is {1!r} or {2!r}; on those two the ordering comparison selects the same branch as =="
EQUIVALENT: list[tuple[str, str, str, str]] = [
    ("spec", "core/ReplaceComparisonOperator_Eq_LtE", 'if kind == "bool" and isinstance(value, str):', KIND),
    ("spec", "core/ReplaceComparisonOperator_Eq_GtE", 'elif kind == "int":', KIND),
    ("spec", "core/ReplaceComparisonOperator_Eq_GtE", 'elif kind == "float":', KIND),
    ("metrics", "core/ReplaceComparisonOperator_Eq_LtE", "if len(labels) == 0:", "a length is never negative"),
    ("metrics", "core/ReplaceUnaryOperator_USub_Invert", "labels = np.asarray(labels).reshape(-1)", NUMPY_NEGATIVE),
    ("metrics", "core/ReplaceUnaryOperator_USub_Invert", "preds = np.asarray(preds).reshape(-1)", NUMPY_NEGATIVE),
    ("metrics", "core/NumberReplacer", "labels = np.asarray(labels).reshape(-1)", NUMPY_NEGATIVE + " (-1 -> -2)"),
    ("metrics", "core/NumberReplacer", "preds = np.asarray(preds).reshape(-1)", NUMPY_NEGATIVE + " (-1 -> -2)"),
    ("train-parts", "core/NumberReplacer", "x = args[0]",
     "a forward pre-hook on a LayerNorm gets its one positional input: args[-1] is args[0]"),
    ("train-fit", "core/ReplaceAndWithOr", "if result.best_step is not None and best_file.exists():",
     "best.pt is written by the evaluation that sets best_step, before any checkpoint records that step, so "
     "in a run's checkpoint folder one holds exactly when the other does"),
    ("train-loop", "core/ReplaceComparisonOperator_GtE_Eq", "last = result.steps >= total_steps",
     "steps grows by one per iteration and the loop only runs while steps < total_steps: steps reaches "
     "total_steps exactly, never passes it"),
    ("data", "*",
     """if cut > 0 and head.count("{") - head.count("}") == 1 and '"truncation":' in head and '"padding":' in head:""",
     BACKEND_PATHS),
    ("data", "core/NumberReplacer", "width = int(lengths.max()) if len(rows) else 0",
     "only an empty batch takes the else branch, and batch_order never makes one (every batch has >= 1 row)"),
    ("train-parts", "core/ReplaceUnaryOperator_Delete_USub",
     "log_t = F.log_softmax(target.float().view(-1, target.size(-1)), -1)",
     "the logits are viewed as 2-D (examples, classes) on the line itself: dim 1 is dim -1"),
    ("train-parts", "core/ReplaceUnaryOperator_Delete_USub",
     "log_s = F.log_softmax(logits.float().view(-1, logits.size(-1)), -1)",
     "the logits are viewed as 2-D (examples, classes) on the line itself: dim 1 is dim -1"),
    ("train-loop", "core/ReplaceComparisonOperator_Lt_NotEq",
     "if len(group) < hp.grad_accum and position < batches_per_epoch:",
     "a group grows by one batch at a time and is emptied when it reaches grad_accum: it is never longer, "
     "so < and != agree"),
    ("train-loop", "core/ReplaceComparisonOperator_Eq_LtE",
     "if not last and (evaluated or (checkpoint_every > 0 and result.steps % checkpoint_every == 0)):",
     "x % k is never negative for k > 0 (the clause's own guard), so <= 0 is == 0"),
    ("train-loop", "core/ReplaceComparisonOperator_GtE_Eq", "end_of_epoch = position >= batches_per_epoch",
     "position grows by one batch and the epoch ends when it reaches batches_per_epoch: it never passes it"),
    ("runner", "core/ReplaceComparisonOperator_Eq_LtE", 'if spec.data_source == "hub" and ddir is not None:',
     TWO_VALUES.format("data_source", "hub", "local")),
    ("runner", "core/ReplaceComparisonOperator_Eq_LtE", 'if record["status"] == "completed":',
     TWO_VALUES.format("status", "completed", "failed")),
    ("train-parts", "core/ReplaceUnaryOperator_Delete_USub", "forward = (p_t * (log_t.detach() - log_s)).sum(-1)",
     "log_s and log_t are 2-D (examples, classes): dim 1 is dim -1"),
    ("train-parts", "core/ReplaceUnaryOperator_Delete_USub", "backward = (p_s * (log_s.detach() - log_t)).sum(-1)",
     "log_s and log_t are 2-D (examples, classes): dim 1 is dim -1"),
    ("train-fit", "core/ReplaceTrueWithFalse",
     'best_state = torch.load(best_file, map_location="cpu", weights_only=True)',
     "best.pt holds a dict of tensors, which both loaders return alike (weights_only only limits unpickling)"),
    ("train-fit", "core/ReplaceTrueWithFalse",
     "batch = {k: v.to(device, non_blocking=True) for k, v in batch.items() if torch.is_tensor(v)}",
     "non_blocking changes when a copy to a GPU overlaps with compute, never its values (and is a no-op on CPU)"),
    ("train-fit", "core/ReplaceComparisonOperator_Gt_GtE", "if hp.max_grad_norm and hp.max_grad_norm > 0:",
     "max_grad_norm == 0 already fails the truthiness test before it"),
    ("report", "core/ReplaceComparisonOperator_Eq_LtE", "if len(vals) == 0:", "a length is never negative"),
    ("report", "core/ReplaceComparisonOperator_Lt_NotEq", "if len(ca) < len(languages):",
     "ca is built from `languages`, so it is never longer: != and < agree"),
    ("tasks", "core/NumberReplacer", "folder = cands[0].parent",
     "every candidate is the same folder with another extension: cands[1].parent is cands[0].parent"),
    ("runner", "core/ReplaceTrueWithFalse", "shutil.rmtree(checkpoint_dir(results_dir, spec), ignore_errors=True)",
     "a completed run evaluated at least once (fit always evaluates its last step), which wrote best.pt into "
     "this folder: it exists, so ignore_errors never matters"),
    ("train-loop", "core/ReplaceComparisonOperator_Eq_LtE",
     "if position == 0:   # an epoch that yielded nothing: avoid looping forever", "position is never negative"),
    ("train-loop", "core/NumberReplacer", "or (hp.eval_every <= 0 and end_of_epoch)):",
     "eval_every is an int: the mutant adds eval_every == 1, where every step is evaluated already"),
    ("data", "core/ReplaceComparisonOperator_GtE_Gt", "if n is None or n >= len(self):",
     "subset(len(self)) then selects every row in order: equal features (a copy instead of self)"),
    ("data", "core/NumberReplacer", "fp = h.hexdigest()[:24]", SAME_CODE.format("a 23-character fingerprint")),
    ("tasks", "core/ReplaceTrueWithFalse", "sort_keys=True, default=str).encode()).hexdigest()",
     SAME_CODE.format("a source key from the dict's insertion order")),
    ("report", "core/ReplaceComparisonOperator_Eq_LtE", "if len(a) == 0:", "a length is never negative"),
    ("report", "core/ReplaceComparisonOperator_Gt_NotEq",
     "out[col] = Stat(float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else None, int(len(vals)))",
     "empty columns were skipped just before: len(vals) >= 1, so != 1 is > 1"),
    ("report", "core/ReplaceComparisonOperator_Gt_NotEq",
     "return len(self.rows) > 1 and col in row.cells and round(row.cells[col].mean, 1) == best",
     "is_best is asked about a row of the table: len(self.rows) >= 1, so != 1 is > 1"),
    ("tasks", "core/ReplaceComparisonOperator_Eq_LtE", "if len(raw) == 0:", "a length is never negative"),
    ("tasks", "core/NumberReplacer", "label = -1", "every negative id is refused alike (labels < 0)"),
    ("tasks", "core/ReplaceComparisonOperator_Eq_LtE", "if len(frame) == 0:", "a length is never negative"),
    ("tasks", "core/ReplaceUnaryOperator_USub_Invert", "label = -1", "every negative id is refused alike"),
    ("tasks", "core/ReplaceUnaryOperator_USub_Invert", "label = index[name] if name is not None else -1",
     "every negative id is refused alike"),
    ("tasks", "core/NumberReplacer", "label = index[name] if name is not None else -1",
     "every negative id is refused alike"),
    ("tasks", "core/NumberReplacer", 'elif text.lstrip("-").isdigit() and 0 <= int(text) < len(label_names):',
     "the mutant admits the id -1, which is then refused like every negative id (labels < 0)"),
    ("tasks", "core/ReplaceTrueWithFalse", "raw = raw.loc[keep].reset_index(drop=True)",
     "raw is only read afterwards by position and named columns: an extra index column changes nothing"),
    ("tasks", "core/NumberReplacer", "return found[0]", "found has exactly one element here (several raise above)"),
    ("tasks", "core/NumberReplacer",
     'raise XltError(f"task {task.name!r}: expected {cands[0]} for split {split!r}, language {lang!r} "',
     "a `files:` source has exactly one candidate: cands[-1] is cands[0] (cands[1] raises, and is killed)"),
    ("runner", "core/ReplaceComparisonOperator_Eq_GtE", 'if spec.data_source == "local" and ddir is None:',
     TWO_VALUES.format("data_source", "hub", "local")),
    ("runner", "core/ReplaceComparisonOperator_Eq_GtE",
     'if record["status"] == "failed" and (record["error"].get("stage") == "setup" or existing is not None):',
     TWO_VALUES.format("status", "completed", "failed")),
    ("data", "core/NumberReplacer", "digest = hashlib.sha256(key.encode()).hexdigest()[:20]",
     SAME_CODE.format("a 19- or 21-character digest")),
    ("train-loop", "core/NumberReplacer", '"loss": result.losses[-1], "lr": scheduler.get_last_lr()[0],',
     "both AdamW groups follow one schedule (pinned by the LR test): get_last_lr()[1] is get_last_lr()[0]"),
    ("train-loop", "core/ReplaceBinaryOperator_Sub_Mod", "result.train_s += time.perf_counter() - tic",
     "tic < now < 2 tic on any clock that has run longer than one step, so now % tic is now - tic"),
    ("train-loop", "core/ReplaceComparisonOperator_Eq_LtE",
     "if dev_eval is not None and (last or (hp.eval_every > 0 and result.steps % hp.eval_every == 0)",
     "x % k is never negative for k > 0 (the clause's own guard), so <= 0 is == 0"),
    ("train-loop", "core/ReplaceComparisonOperator_Lt_NotEq", "while result.steps < total_steps:",
     "steps grows by one and starts below total_steps (a resumed run too): it reaches it, never passes it"),
    ("metrics", "core/NumberReplacer", "return float(np.mean(f1s)) if f1s else 0.0",
     "f1s is empty only for zero examples, and score() refuses those before any metric runs (sklearn refuses "
     "them too)"),
    # the seam's modules (sampled run of 2026-11-29)
    ("pair", "core/ReplaceUnaryOperator_USub_UAdd", 'return batch["row"].numpy(), logits.argmax(-1).cpu().numpy()',
     "a classification head's logits are (batch, labels): axis +1 is axis -1"),
    ("pair", "core/ReplaceUnaryOperator_Delete_USub", 'return batch["row"].numpy(), logits.argmax(-1).cpu().numpy()',
     "a classification head's logits are (batch, labels): axis 1 is axis -1"),
    ("spans", "core/ReplaceBinaryOperator_Add_Mul", "size = max(len(j.codes) for j in joined) + 1",
     "size is the radix that packs (first, last) offsets into one key; offsets are below len(codes), so any "
     "radix >= max(len(codes)) keeps keys unique and decodes them the same"),
    ("spans", "core/NumberReplacer", "size = max(len(j.codes) for j in joined) + 1",
     "size is the radix that packs (first, last) offsets into one key; offsets are below len(codes), so any "
     "radix >= max(len(codes)) keeps keys unique and decodes them the same"),
    ("spans", "core/ReplaceBinaryOperator_Add_FloorDiv", "count=int(self.lengths.sum()) + len(sentences) + 1)",
     "the count drops the join's trailing \"O\", which follows the last sentence's own \"O\" separator: "
     "chunks and counts are the same with or without it (zero sentences included, checked)"),
    ("spans", "core/NumberReplacer", "at = np.minimum(np.searchsorted(pred, gold), max(len(pred) - 1, 0))",
     "max(len(pred) - 1, -1) differs only when pred is empty, and then `at` is not used (found is all False)"),
    ("qa-metrics", "core/ReplaceComparisonOperator_Eq_LtE", "if same == 0:", "a count of shared tokens is never negative"),
    ("qa-metrics", "core/ReplaceComparisonOperator_NotEq_Gt", 'return " ".join(t for t in tokens if t.strip() != "")',
     'for strings, s > "" exactly when s != ""'),
    ("qa-metrics", "core/ReplaceComparisonOperator_NotEq_GtE", 'return " ".join(t for t in tokens if t.strip() != "")',
     "the filter (kept from MLQA's white_space_fix) never drops a token: str.split() yields no blank tokens, and "
     "mixed segmentation adds only CJK characters one by one (punctuation is removed before it runs)"),
    ("qa-decode", "core/ReplaceComparisonOperator_Gt_NotEq", "usable = (char_start >= 0) & (char_end > char_start)",
     "a token's character offsets never end before they start, so end != start is end > start"),
    ("qa-decode", "core/NumberReplacer", "usable = (char_start >= 0) & (char_end > char_start)",
     "char_start >= -1: tokens outside the context carry (-1, -1), which char_end > char_start already excludes"),
    ("qa-decode", "core/ReplaceComparisonOperator_NotEq_Gt",
     "first = order[np.r_[True, question[order][1:] != question[order][:-1]]] if len(order) else order",
     "order is sorted by question (lexsort's last key), so neighbouring questions differ exactly when the later "
     "one is greater"),
    ("spans", "core/NumberReplacer", "first = np.where(before >= 0, start_at[np.maximum(before, 0)], 0)",
     "before is never below -1, and where it is -1 np.where discards the gathered value; start_at[-1] and "
     "start_at[0] both exist whenever a chunk ends (every chunk end has its start)"),
    ("statistics", "core/ReplaceUnaryOperator_USub_Invert",
     "picked = inverse.reshape(-1)[rng.integers(0, n, size=(n_resamples, n))]   # (R, n) distinct-row ids",
     NUMPY_NEGATIVE),
    ("pair", "core/ReplaceComparisonOperator_Eq_LtE", "if len(frame) == 0:", "a length is never negative"),
    ("tagging", "core/ReplaceComparisonOperator_Eq_LtE", "if len(predictions) == 0:", "a length is never negative"),
    ("tables", "core/ReplaceComparisonOperator_Eq_GtE", "out = means[counts == len(run_ids)].sort_index()",
     "an example appears at most once per run ((lang, idx) is unique in a predictions file), so no count exceeds "
     "the number of runs and >= is =="),
    ("tables", "core/ReplaceComparisonOperator_Lt_NotEq",
     "if sum(lang in result for lang in view.languages) < len(view.languages):",
     "the sum counts a subset of the languages, so it never exceeds their number and != is <"),
    ("tables", "core/ReplaceTrueWithFalse", "sub = sub.reset_index(drop=True)",
     "the kept column of old row labels is never read: statistics() reads only the type's prediction columns"),
    ("pair", "core/ReplaceComparisonOperator_Gt_NotEq",
     "f1s.append(np.divide(2 * tp, denom, out=np.zeros_like(denom), where=denom > 0))",
     "denom = 2 tp + fp + fn is a sum of counts, never negative, so != 0 is > 0"),
    ("pair", "core/NumberReplacer", 'elif text.lstrip("-").isdigit() and 0 <= int(text) < len(label_names):',
     "-1 <= id: the label \"-1\" then maps to -1, which is the unknown-label id the else branch gives it anyway"),
    ("statistics", "core/ReplaceBinaryOperator_Mul_Add", "if 5 * distinct < n:", "the threshold only chooses between two exact samplers of the same bootstrap counts (a multinomial over "
     "distinct rows, or rows drawn by index and counted): speed, not what is sampled"),
    ("statistics", "core/ReplaceComparisonOperator_Eq_LtE", "if len(vals) == 0:", "a length is never negative"),
    ("statistics", "core/NumberReplacer",
     "picked = inverse.reshape(-1)[rng.integers(0, n, size=(n_resamples, n))]   # (R, n) distinct-row ids",
     NUMPY_NEGATIVE + " (-1 -> -2)"),
    ("tagging", "core/ReplaceUnaryOperator_USub_Invert", "tag = key if 0 <= key < n else -1",
     "any negative id marks an unknown tag (the reader checks tag < 0): ~1 is -2"),
    ("tagging", "core/NumberReplacer", "tag = index.get(name, -1)",
     "any negative id marks an unknown tag (the reader checks tag < 0)"),
    ("spans", "core/ReplaceBinaryOperator_Add_FloorDiv", "size = max(len(j.codes) for j in joined) + 1",
     "size is the radix that packs (first, last) offsets into one key; offsets are below len(codes), so any "
     "radix >= max(len(codes)) keeps keys unique and decodes them the same"),
    ("spans", "core/NumberReplacer", "count=int(self.lengths.sum()) + len(sentences) + 1)",
     "the count drops the join's trailing \"O\", which follows the last sentence's own \"O\" separator: "
     "chunks and counts are the same with or without it (zero sentences included, checked)"),
    ("spans", "core/ReplaceBinaryOperator_FloorDiv_Div",
     "return [(names[key % MAX_TYPES], key // MAX_TYPES % size, key // MAX_TYPES // size) for key in keys.tolist()]",
     "(key / MAX_TYPES) // size is the same whole number as a float (4.0 == 4), so the chunks compare equal"),
    ("spans", "core/ReplaceBinaryOperator_FloorDiv_Mod", "last = keys // MAX_TYPES // size",
     "this gives a chunk's first offset instead of its last; a chunk never crosses the \"O\" between "
     "sentences, so both fall in the same sentence"),
    ("tables", "core/ReplaceFalseWithTrue",
     'for lang, sub in preds[preds["split"] == split].groupby("lang", sort=False):',
     "the frames are concatenated and grouped by (lang, idx), then sorted: the order they come in is lost"),
    ("tables", "core/ReplaceTrueWithFalse", "stats = task_type.statistics(sub).reset_index(drop=True)",
     "the index is replaced on the next line; the kept column of row positions is summed along but no "
     "metric_from_totals reads it"),
    ("statistics", "core/ReplaceComparisonOperator_Lt_Eq", "if 5 * distinct < n:", "the threshold only chooses between two exact samplers of the same bootstrap counts (a multinomial over "
     "distinct rows, or rows drawn by index and counted): speed, not what is sampled"),
    ("statistics", "core/ReplaceComparisonOperator_Lt_LtE", "if 5 * distinct < n:", "the threshold only chooses between two exact samplers of the same bootstrap counts (a multinomial over "
     "distinct rows, or rows drawn by index and counted): speed, not what is sampled"),
    ("statistics", "core/NumberReplacer", "if 5 * distinct < n:", "the threshold only chooses between two exact samplers of the same bootstrap counts (a multinomial over "
     "distinct rows, or rows drawn by index and counted): speed, not what is sampled"),
    ("statistics", "core/ReplaceComparisonOperator_Gt_NotEq",
     "out[col] = Stat(float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else None, int(len(vals)))",
     "an empty column is skipped just above, so len(vals) is at least 1 and != 1 is > 1"),
    ("spans", "core/ReplaceBinaryOperator_Add_Mul", "count=int(self.lengths.sum()) + len(sentences) + 1)",
     "the count drops the join's trailing \"O\", which follows the last sentence's own \"O\" separator: "
     "chunks and counts are the same with or without it (zero sentences included, checked)"),
    ("spans", "core/ReplaceBinaryOperator_Add_Sub", "size = max(len(j.codes) for j in joined) + 1",
     "a chunk never starts on the join's last two codes (both \"O\"), so first < len(codes) - 1 stays below "
     "the radix and keys still decode uniquely"),
    ("spans", "core/ReplaceBinaryOperator_FloorDiv_Div", "last = keys // MAX_TYPES // size",
     "last only feeds searchsorted(starts, last, side='right') over integer starts, which puts x and floor(x) "
     "in the same place"),
]


# --------------------------------------------------------------------------------------------------
# Scope: line ranges of the named functions


def _definitions(tree: ast.Module) -> dict[str, ast.AST]:
    out = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.name] = node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    out[f"{node.name}.{item.name}"] = item
    return out


def scope_lines(module: Module, root: Path = ROOT) -> list[tuple[int, int]]:
    """(first, last) source lines to mutate: each named function's body (without decorators and docstring),
    or the lines of a function from the one containing a first text to the one containing a last text."""
    source = (root / module.path).read_text(encoding="utf-8")
    lines = source.splitlines()
    defs = _definitions(ast.parse(source))
    ranges = []
    for entry in module.scope:
        name = entry if isinstance(entry, str) else entry[0]
        if name not in defs:
            raise SystemExit(f"{module.path}: no function {name!r} (update MODULES in {Path(__file__).name})")
        node = defs[name]
        body = node.body
        if isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str):
            body = body[1:] or body
        first, last = body[0].lineno, node.end_lineno
        if not isinstance(entry, str):
            start_text, end_text = entry[1], entry[2]
            hits = [i for i in range(first, last + 1) if start_text in lines[i - 1]]
            if not hits:
                raise SystemExit(f"{module.path}: {start_text!r} not found in {name}")
            start = hits[0]
            ends = [i for i in range(start, last + 1) if end_text in lines[i - 1]]
            if not ends:
                raise SystemExit(f"{module.path}: {end_text!r} not found in {name} after {start_text!r}")
            first, last = start, ends[0]
        ranges.append((first, last))
    return ranges


# --------------------------------------------------------------------------------------------------
# Running


def copy_tree(dest: Path) -> None:
    """The working tree (tracked and untracked, not ignored files) into dest; ../shared linked beside it."""
    if dest.exists():
        shutil.rmtree(dest)
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.splitlines()
    for rel in files:
        src = ROOT / rel
        if src.is_symlink():        # e.g. xlt/_data/tasks -> ../../tasks: the same link in the copy
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(src), dest / rel)
        elif src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    shared = dest.parent / "shared"
    if not shared.exists():
        shared.symlink_to((ROOT.parent / "shared").resolve())


def test_command(module: Module) -> str:
    return shlex.join([str(BIN / "python"), "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                       *module.pytest_args, *module.tests])


def write_config(module: Module, path: Path, timeout: float, ranges: list[tuple[int, int]]) -> None:
    lines = ", ".join(f'"{a}-{b}"' for a, b in ranges)
    excluded = ", ".join(json.dumps(e) for e in EXCLUDED_OPERATORS)
    path.write_text(f"""[cosmic-ray]
module-path = "{module.path}"
timeout = {timeout:.0f}
excluded-modules = []
test-command = {json.dumps(test_command(module))}

[cosmic-ray.distributor]
name = "local"

[cosmic-ray.filters.operators-filter]
exclude-operators = [{excluded}]

[cosmic-ray.filters.line-filter]
lines = {{ "{module.path}" = [{lines}] }}
""")


def restore_original(module: Module, base: Path) -> None:
    """Put the unmutated source back into the copy (a stopped run can leave its last mutant on disk); refuse
    when the working tree's source has changed since the run (the mutants' positions would be wrong)."""
    original = base / "original.py"
    source = (original if original.exists() else ROOT / module.path).read_bytes()
    if source != (ROOT / module.path).read_bytes():
        raise SystemExit(f"{module.path} changed since the last run; run the module again from scratch")
    (base / "tree" / module.path).write_bytes(source)


def resume_module(module: Module, workdir: Path, log) -> Path:
    """Run the mutants a stopped run left pending (cosmic-ray runs them in random order, so a stopped run's
    results are a uniform sample of the module's mutants)."""
    base = workdir / module.name
    tree, session, config = base / "tree", base / "session.sqlite", base / "cosmic-ray.toml"
    if not session.exists():
        raise SystemExit(f"{module.name}: no previous run under {workdir}")
    restore_original(module, base)
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("XLT_DATA_DIR", None)
    log(f"{module.name}: {count(session)['pending']} pending mutants")
    subprocess.run([str(BIN / "cosmic-ray"), "exec", str(config), str(session)], cwd=tree, env=env, check=True,
                   capture_output=True, text=True)
    log(f"{module.name}: done")
    return session


def retest_survivors(module: Module, workdir: Path, log) -> Path:
    """Run the survivors of the last run again against the current tests (the sources must be unchanged)."""
    base = workdir / module.name
    tree, session, config = base / "tree", base / "session.sqlite", base / "cosmic-ray.toml"
    if not session.exists():
        raise SystemExit(f"{module.name}: no previous run under {workdir}")
    for rel in subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "tests"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.splitlines():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, tree / rel)
    restore_original(module, base)
    write_config(module, config, float(config.read_text().split("timeout = ")[1].split()[0]),
                 scope_lines(module, tree))
    db = sqlite3.connect(session)
    # cosmic-ray runs every mutant without a result: park the ones a stopped run never reached (--resume runs
    # them), so that only the survivors run again
    never_run = [row[0] for row in db.execute(
        "SELECT job_id FROM work_items WHERE job_id NOT IN (SELECT job_id FROM work_results)")]
    db.executemany("INSERT INTO work_results (job_id, worker_outcome, output) VALUES (?, 'SKIPPED', 'parked')",
                   [(job,) for job in never_run])
    gone = db.execute("DELETE FROM work_results WHERE test_outcome IN ('SURVIVED', 'survived')").rowcount
    db.commit()
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("XLT_DATA_DIR", None)
    log(f"{module.name}: {gone} survivors again")
    try:
        subprocess.run([str(BIN / "cosmic-ray"), "exec", str(config), str(session)], cwd=tree, env=env,
                       check=True, capture_output=True, text=True)
    finally:
        db.execute("DELETE FROM work_results WHERE output = 'parked'")
        db.commit()
        db.close()
    log(f"{module.name}: done")
    return session


def run_module(module: Module, workdir: Path, log) -> Path:
    """Mutate one module in its own copy of the tree; return the cosmic-ray session database."""
    base = workdir / module.name
    tree = base / "tree"
    base.mkdir(parents=True, exist_ok=True)
    copy_tree(tree)
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("XLT_DATA_DIR", None)
    tic = time.perf_counter()
    baseline = subprocess.run(shlex.split(test_command(module)), cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - tic
    if baseline.returncode != 0:
        raise SystemExit(f"{module.name}: the tests fail without any mutation:\n{baseline.stdout[-3000:]}")
    config, session = base / "cosmic-ray.toml", base / "session.sqlite"
    shutil.copy2(tree / module.path, base / "original.py")     # the tree's copy holds a mutant while it runs
    write_config(module, config, max(60.0, 4 * seconds), scope_lines(module, tree))
    session.unlink(missing_ok=True)
    run = lambda *args: subprocess.run([str(BIN / args[0]), *args[1:]], cwd=tree, env=env, check=True,  # noqa: E731
                                       capture_output=True, text=True)
    run("cosmic-ray", "init", str(config), str(session))
    run("cr-filter-operators", str(session), str(config))
    run("cr-filter-lines", "--config", str(config), str(session))
    pending = count(session)["pending"]
    log(f"{module.name}: {pending} mutants, baseline tests {seconds:.0f} s; running")
    run("cosmic-ray", "exec", str(config), str(session))
    log(f"{module.name}: done in {time.perf_counter() - tic:.0f} s")
    return session


# --------------------------------------------------------------------------------------------------
# Results


def mutants(session: Path) -> list[dict]:
    """Every mutant that was run (not filtered out): operator, line, outcome, diff."""
    db = sqlite3.connect(session)
    rows = db.execute("""
        SELECT m.job_id, m.module_path, m.operator_name, m.occurrence, m.start_pos_row, r.test_outcome,
               r.worker_outcome, r.diff, r.output
        FROM mutation_specs m LEFT JOIN work_results r ON r.job_id = m.job_id""").fetchall()
    db.close()
    out = []
    for job, path, op, occ, line, test_outcome, worker_outcome, diff, output in rows:
        # SQLAlchemy stores the enums' names (SKIPPED, SURVIVED, ...)
        test_outcome = test_outcome.lower() if test_outcome else None
        worker_outcome = worker_outcome.lower() if worker_outcome else None
        if worker_outcome == "skipped":
            continue
        out.append(dict(job=job, path=path, operator=op, occurrence=occ, line=line, outcome=test_outcome,
                        worker=worker_outcome, diff=diff or "", timeout=(output or "") == "timeout"))
    return out


def count(session: Path) -> dict[str, int]:
    db = sqlite3.connect(session)
    total = db.execute("SELECT COUNT(*) FROM mutation_specs").fetchone()[0]
    done = {str(k).lower(): v for k, v in
            db.execute("SELECT worker_outcome, COUNT(*) FROM work_results GROUP BY worker_outcome").fetchall()}
    db.close()
    return {"total": total, "pending": total - sum(done.values()), **done}


def equivalent_reason(module: Module, mutant: dict, source_lines: list[str]) -> str | None:
    text = source_lines[mutant["line"] - 1].strip()
    for name, op, line, reason in EQUIVALENT:
        if name == module.name and op in (mutant["operator"], "*") and text == line:
            return reason
    return None


def summarize(module: Module, session: Path) -> dict:
    original = session.parent / "original.py"
    source = (original if original.exists() else ROOT / module.path).read_text(encoding="utf-8").splitlines()
    ms = [m for m in mutants(session) if m["outcome"] is not None]
    killed = [m for m in ms if m["outcome"] != "survived"]
    survived = [m for m in ms if m["outcome"] == "survived"]
    equivalent = [(m, r) for m in survived if (r := equivalent_reason(module, m, source))]
    live = [m for m in survived if not equivalent_reason(module, m, source)]
    scored = len(ms) - len(equivalent)
    return {"module": module.name, "path": module.path, "mutants": len(ms), "pending": count(session)["pending"],
            "killed": len(killed),
            "timeouts": sum(m["timeout"] for m in killed), "equivalent": len(equivalent),
            "survived": len(live), "score": len(killed) / scored if scored else 1.0,
            "survivors": [dict(m, source=source[m["line"] - 1].strip()) for m in live],
            "equivalents": [dict(m, source=source[m["line"] - 1].strip(), reason=r) for m, r in equivalent]}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% interval of a proportion k/n (Wilson): what a partial run's sample says about the whole module."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre, half = p + z * z / (2 * n), z * ((p * (1 - p) + z * z / (4 * n)) / n) ** 0.5
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def _with_total(summaries: list[dict]) -> list[dict]:
    total = {"module": "total", "path": "", **{k: sum(s[k] for s in summaries) for k in
                                               ("mutants", "pending", "killed", "equivalent")}}
    return summaries + ([total] if summaries else [])


def print_table(summaries: list[dict]) -> None:
    width = max([len(s["path"]) for s in summaries] + [4])
    head = (f"{'module':<12} {'file':<{width}} {'run':>9} {'killed':>6} {'equiv.':>6} {'survived':>8} {'score':>6}"
            f"  {'95% CI (partial runs)':<20}")
    print(head)
    print("-" * len(head))
    for s in _with_total(summaries):
        scored = s["mutants"] - s["equivalent"]
        score = s["killed"] / scored if scored else 1.0
        ci = "" if not s["pending"] else "[{:.1f}%, {:.1f}%]".format(*(100 * x for x in wilson(s["killed"], scored)))
        if s["module"] == "total":
            print("-" * len(head))
        print(f"{s['module']:<12} {s['path']:<{width}} {s['mutants']:>4}/{s['mutants'] + s['pending']:<4} "
              f"{s['killed']:>6} {s['equivalent']:>6} {scored - s['killed']:>8} {100 * score:>5.1f}%  {ci}")


def _change(mutant: dict) -> tuple[str, str]:
    """The mutated line before and after, from the mutant's diff."""
    lines = mutant["diff"].splitlines()
    old = next((l[1:].strip() for l in lines if l.startswith("-") and not l.startswith("---")), mutant["source"])
    new = next((l[1:].strip() for l in lines if l.startswith("+") and not l.startswith("+++")), "")
    return old, new


def markdown(summaries: list[dict]) -> str:
    """The per-module table, every survivor and every equivalent mutant, as markdown for docs/testing.md."""
    out = ["| module | file | mutants run / in scope | killed | equivalent | survived | score |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for s in _with_total(summaries):
        scored = s["mutants"] - s["equivalent"]
        score = f"{100 * s['killed'] / scored:.1f}%" if scored else "-"
        bold = (lambda x: f"**{x}**") if s["module"] == "total" else str
        out.append(f"| {bold(s['module'])} | {'`' + s['path'] + '`' if s['path'] else ''} | "
                   f"{s['mutants']} / {s['mutants'] + s['pending']} | {s['killed']} | {s['equivalent']} | "
                   f"{scored - s['killed']} | {bold(score)} |")
    out += ["", "Survivors (module:line, original -> mutant):", ""]
    for s in summaries:
        for m in sorted(s["survivors"], key=lambda m: m["line"]):
            old, new = _change(m)
            out.append(f"- {s['module']}:{m['line']} `{old}` -> `{new}`")
    out += ["", "Equivalent mutants (excluded from the score), with the reason no input can tell them apart:", ""]
    for s in summaries:
        for m in sorted(s["equivalents"], key=lambda m: m["line"]):
            old, new = _change(m)
            out.append(f"- {s['module']}:{m['line']} `{old}` -> `{new}`: {m['reason']}")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"some of: {', '.join(m.name for m in MODULES)} (default all)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where copies and sessions go")
    parser.add_argument("--jobs", type=int, default=2, help="modules mutated at the same time")
    parser.add_argument("--list", action="store_true", help="show modules, scopes and tests, run nothing")
    parser.add_argument("--report", action="store_true", help="summarise the last run, run nothing")
    parser.add_argument("--retest", action="store_true",
                        help="run only the last run's survivors again, against the current tests")
    parser.add_argument("--resume", action="store_true", help="run the mutants a stopped run left pending")
    parser.add_argument("--survivors", action="store_true", help="with --report: the diff of every survivor")
    parser.add_argument("--markdown", action="store_true",
                        help="with --report: the table, survivors and equivalents as markdown (docs/testing.md)")
    args = parser.parse_args(argv)
    by_name = {m.name: m for m in MODULES}
    unknown = [n for n in args.modules if n not in by_name]
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; choose from {', '.join(by_name)}")
    chosen = [by_name[n] for n in args.modules] or MODULES
    if args.list:
        import tempfile
        for m in chosen:
            with tempfile.TemporaryDirectory() as tmp:   # init and filters only read the sources
                config, session = Path(tmp) / "c.toml", Path(tmp) / "s.sqlite"
                write_config(m, config, 60, scope_lines(m))
                for cmd in (["cosmic-ray", "init", config, session], ["cr-filter-operators", session, config],
                            ["cr-filter-lines", "--config", config, session]):
                    subprocess.run([str(BIN / cmd[0]), *map(str, cmd[1:])], cwd=ROOT, check=True,
                                   capture_output=True)
                n = count(session)["pending"]
            print(f"{m.name}: {m.path}, {n} mutants in lines {scope_lines(m)}\n  tests: {test_command(m)}")
        return 0
    workdir = args.workdir.resolve()
    if not args.report:
        workdir.mkdir(parents=True, exist_ok=True)
        log = lambda text: print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)  # noqa: E731
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            step = retest_survivors if args.retest else resume_module if args.resume else run_module
            list(pool.map(lambda m: step(m, workdir, log), chosen))
    summaries = []
    for m in chosen:
        session = workdir / m.name / "session.sqlite"
        if not session.exists():
            print(f"{m.name}: no session under {workdir} (run it first)")
            continue
        summaries.append(summarize(m, session))
    if args.markdown:
        print(markdown(summaries))
        return 0
    print_table(summaries)
    (workdir / "summary.json").write_text(json.dumps(summaries, indent=1))
    for s in summaries:
        for m in s["equivalents"]:
            print(f"equivalent {s['module']}:{m['line']} {m['operator']}: {m['source']}  ({m['reason']})")
        for m in s["survivors"]:
            print(f"SURVIVED {s['module']}:{m['line']} {m['operator']} #{m['occurrence']}: {m['source']}")
            if args.survivors:
                print("    " + m["diff"].replace("\n", "\n    "))
    print(f"details: {workdir / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
