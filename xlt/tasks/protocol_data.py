"""Where the data of the protocols beyond zero-shot lives (a task file's `protocols:` block), what a run reads.

    protocols:
      translate-train:            # the train split machine-translated into each target language
        languages: [fr, de]       # the targets that have one (default: every language but the source)
        sources: [...]            # optional, like the task's `sources:`; default: the task's own sources
      translate-test:             # each target's evaluation splits machine-translated into the source language
        sources: [...]            # optional; default: local files only (below)
      few-shot:
        split: validation         # where shots are drawn from (default: train_split); never evaluated there

`translate-train` serves the protocols translate-train and translate-train-all, `translate-test` translate-test
and `few-shot` few-shot (xlt.protocols), which read them as `DataRef` kinds. A translated train split is what a
task's sources give for (train_split, target): with `--data-dir DIR`, `DIR/<task>/train-<lang>.<ext>` as today;
on the hub, e.g. facebook/xnli's per-language train split (XNLI-MT). English translations of evaluation splits
are `DIR/<task>/translate-test/<split>-<lang>.<ext>` (or beside a `files:` pattern, in `translate-test/`) unless
the block names other sources. Translate-train and translate-test must be declared (only the task's author
knows that a split is a translation); few-shot draws from the train split by default.

`plan_run` decides, before anything is read, which models the protocol trains (xlt.protocols.plan_models) and
which files or hub revisions every one of them reads: its `DataPlan` is the run's data identity. `read` reads
one DataRef; a translate-test split is checked against the original row by row (`aligned`), and shots are drawn
with the run's seed (`draw_shots`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from xlt.data import SplitData
from xlt.errors import XltError
from xlt.protocols import (FEW_SHOT, ORIGINAL, TRANSLATE_TEST, DataRef, Layout, Plan, get_protocol, plan_models,
                           shot_rows)
from xlt.tasks.protocol_block import declared
from xlt.tasks.sources import DataPlan, local_candidates, local_file, load_split, plan_data

TRANSLATE_TEST_FOLDER = "translate-test"


def check_protocol(task: Any, protocol: str) -> None:
    """An XltError, before any work, when `task` cannot be run under `protocol`: a type that does not train,
    translated data its file does not declare, or translate-test on a type whose gold is not a per-example label."""
    proto = get_protocol(protocol)
    if not proto.data:
        return
    ttype = task.task_type
    if not ttype.trains:
        raise XltError(f"task {task.name!r} (type {ttype.name}) does not train, so protocol {protocol} does not "
                       "apply; run it zero-shot")
    for kind in proto.data:
        if kind != FEW_SHOT and declared(task, kind) is None:
            raise XltError(f"task {task.name!r} declares no {kind} data, which protocol {protocol} reads; add "
                           f"`protocols: {kind}:` to {task.path or 'its task file'} (docs/protocols.md)")
    if TRANSLATE_TEST in proto.data and "label" not in ttype.columns:
        raise XltError(f"protocol translate-test keeps each example's original gold label, but type {ttype.name} "
                       "has none (its gold is in the text a translation moves: answer spans, tags); it does not "
                       "apply to this task")


def task_revision(task: Any, protocol: str) -> str:
    """The task file's identity for a run under `protocol`: its fingerprint (zero-shot's, unchanged by a
    `protocols:` block) plus the blocks of the data that protocol reads."""
    blocks = {kind: block.to_dict() for kind in get_protocol(protocol).data if (block := declared(task, kind))}
    if not blocks:
        return task.fingerprint
    for block in blocks.values():
        for src in block.get("sources", []):
            if "files" in src:
                src["files"] = Path(src["files"]).name   # the pattern, not the folder it was found in
    canonical = json.dumps([task.fingerprint, blocks], sort_keys=True, separators=(",", ":"), default=str)
    return "task-sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# Views: the task as a protocol's data sees it


def view(task: Any, kind: str) -> Any:
    """`task` with the sources of one data kind: the block's own, else the task's (translate-train, few-shot),
    else local files in `translate-test/` beside the task's own (translate-test)."""
    block = declared(task, kind) if kind != ORIGINAL else None
    if block is not None and block.sources:
        sources = block.sources
    elif kind == TRANSLATE_TEST:
        sources = tuple(_beside(task, src) for src in task.sources)
    else:
        return task
    if kind == TRANSLATE_TEST:   # --data-dir reads DIR/<task>/translate-test/ whatever the declared sources
        sources = tuple(s if s.files else dataclasses.replace(s, data_dir_name=_folder(task, s)) for s in sources)
    return dataclasses.replace(task, sources=sources)


def _folder(task: Any, src: Any) -> str:
    base = (src.data_dir_name or task.name).split("/")[0]
    return f"{base}/{TRANSLATE_TEST_FOLDER}"


def _beside(task: Any, src: Any) -> Any:
    """A task source turned into a local-only source of English translations: `files:` patterns get a
    `translate-test/` folder, hub sources become the --data-dir folder DIR/<task>/translate-test/."""
    files = None
    if src.files:
        pattern = Path(src.files)
        files = str(pattern.parent / TRANSLATE_TEST_FOLDER / pattern.name)
    return dataclasses.replace(src, hub=None, config=None, revision=None, data_files=None, files=files,
                               data_dir_name=_folder(task, src))


# --------------------------------------------------------------------------------------------------
# The plan of a run: models and the data each reads


@dataclass
class RunPlan:
    plan: Plan                         # the models (xlt.protocols.ModelPlan) and the languages left out
    data: DataPlan                     # every (split, language) read and where: the run's data identity
    looked_for: dict[str, str] = dataclasses.field(default_factory=dict)   # data kind -> where it was looked for


def layout(task: Any, languages: Sequence[str], shots: int | None = None, splits: Sequence[str] | None = None
           ) -> Layout:
    block = declared(task, FEW_SHOT)
    splits = tuple(splits) if splits is not None else tuple(task.eval_splits)
    return Layout(task.source_lang, task.train_split, task.dev_split, splits, tuple(languages),
                  shot_split=block.split if block and block.split else None, shots=shots)


def locate(task: Any, ref: DataRef, data_dir: Any) -> Path | str | None:
    """Where `ref` is read from: a local file, "<hub id>@<revision>", or None when it is not available (a
    language the task file does not list for that data, a --data-dir file that is not there). A file that a
    `files:` source names must exist: an XltError names it."""
    data = view(task, ref.kind)
    block = declared(task, ref.kind) if ref.kind != ORIGINAL else None
    if block is not None and block.languages is not None and ref.lang not in block.languages:
        return None
    try:
        src = data.source_for(ref.split, ref.lang)
    except XltError:
        return None
    cands = local_candidates(data, ref.split, ref.lang, data_dir)
    if cands:
        if src.files is None and not any(c.is_file() for c in cands):
            return None
        return local_file(data, ref.split, ref.lang, data_dir)
    return f"{src.hub}@{src.revision or 'main'}" if src.hub else None


def plan_run(task: Any, data_dir: Any, languages: Sequence[str], protocol: str, shots: int | None = None,
             splits: Sequence[str] | None = None) -> RunPlan:
    """What a run of `task` under `protocol` trains and reads (module docstring). The source language's train
    and dev splits and the evaluation splits are planned as for zero-shot (`xlt.tasks.sources.plan_data`);
    every other (split, language, kind) a model needs is added when it is available, and a language that lacks
    it is left out of that model (xlt.protocols.plan_models) and named. `splits`: the evaluation splits read
    (None: every one of the task's); a protocol that does not train (evaluate) needs no train or dev split."""
    check_protocol(task, protocol)
    base = plan_data(task, data_dir, languages, fine_tunes=get_protocol(protocol).trains, splits=splits)
    readable = set(base.reads)
    where: dict[DataRef, Path | str | None] = {}

    def has(ref: DataRef) -> bool:
        if ref.kind == ORIGINAL and (ref.split, ref.lang) in readable:
            return True
        if ref not in where:
            where[ref] = locate(task, ref, data_dir)
        return where[ref] is not None

    plan = plan_models(get_protocol(protocol), layout(task, languages, shots, splits), has)
    data = DataPlan(list(base.reads), list(base.files), list(base.hub), dict(base.skipped), dict(base.looked_for))
    used = {ref for model in plan.models for ref in (*model.train, *model.predicts, model.select) if ref}
    for ref in sorted(used, key=str):
        found = where.get(ref)
        if found is None:
            continue
        if isinstance(found, Path):
            data.files.append(found)
        else:
            data.hub.append(found)
    looked = {kind: _pattern(task, kind, data_dir) for kind in get_protocol(protocol).data}
    return RunPlan(plan, data, {k: v for k, v in looked.items() if v})


def _pattern(task: Any, kind: str, data_dir: Any) -> str | None:
    """Where a data kind is looked for under --data-dir, as one pattern (for messages and the record)."""
    block = declared(task, kind)
    split = (block.split if block and block.split else task.train_split) if kind != TRANSLATE_TEST \
        else task.eval_splits[0]
    lang = next((lang for lang in task.languages if lang != task.source_lang), task.source_lang)
    try:
        cands = local_candidates(view(task, kind), split, lang, data_dir)
    except XltError:
        return None
    return str(cands[0].parent / f"{split}-<lang>.{cands[0].suffix.lstrip('.')}") if cands else None


# --------------------------------------------------------------------------------------------------
# Reading


def read(task: Any, ref: DataRef, data_dir: Any) -> SplitData:
    """One (split, language) in the form `ref.kind` says (a translate-test ref: the translation only; see
    `aligned`)."""
    return load_split(view(task, ref.kind), ref.split, ref.lang, data_dir)


def aligned(original: SplitData, translation: SplitData) -> SplitData:
    """The translation of an evaluation split, checked to hold the original's examples row by row (the parallel
    order XNLI's, PAWS-X's and XTREME's translations keep): as many rows, and each row's gold label the
    original's, so its predictions line up with the original's gold labels by `idx`. An XltError names the
    first row that differs."""
    where = f"{translation.origin} (translation of {original.origin})"
    if len(translation) != len(original):
        raise XltError(f"{where} has {len(translation)} rows, the original {len(original)}; a translation must hold "
                       "the same examples in the same order")
    gold, theirs = original.frame["label"].to_numpy(), translation.frame["label"].to_numpy()
    differ = (gold != theirs).nonzero()[0]
    if len(differ):
        row = int(differ[0])
        raise XltError(f"row {row} of {where} has label {theirs[row]!r} where the original has {gold[row]!r} "
                       f"({len(differ)} rows differ): the translation is not row by row the original's examples")
    return translation


def draw_shots(pool: SplitData, shots: int, seed: int) -> tuple[SplitData, list[int]]:
    """`shots` rows of `pool` drawn with the run's seed (xlt.protocols.shot_rows), and their row numbers."""
    rows = shot_rows(len(pool), shots, seed, pool.lang)
    frame = pool.frame.iloc[rows].reset_index(drop=True)
    digest = hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]
    return dataclasses.replace(pool, frame=frame, source_key=f"{pool.source_key}|rows={digest}"), rows


__all__ = ["RunPlan", "check_protocol", "task_revision", "view", "layout",
           "locate", "plan_run", "read", "aligned", "draw_shots", "declared"]
