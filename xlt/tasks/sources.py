"""Reading one split of one language from a task's source: local files or a pinned hub revision.

`--data-dir DIR` (or XLT_DATA_DIR) replaces hub sources with `DIR/<data_dir_name or task>/<split>-<lang>.<ext>`,
the extensions being those the task type reads (pairs: tsv csv jsonl parquet; tagging: tsv as two-column
CoNLL; QA: json as SQuAD). Files named by `files:` are read as they are. The rows are mapped to the type's
`columns` and handed to the type's `prepare`, which validates them.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from xlt.data import SplitData
from xlt.errors import XltError
from xlt.tasks.taskspec import Source, TaskSpec


def data_dir_from_env(data_dir: str | Path | None) -> Path | None:
    """`data_dir`, else XLT_DATA_DIR, else None: the one place the environment variable is read."""
    if data_dir is None:
        env = os.environ.get("XLT_DATA_DIR")
        data_dir = env if env else None
    return Path(data_dir).expanduser() if data_dir is not None else None


def local_candidates(task: TaskSpec, split: str, lang: str, data_dir: str | Path | None) -> list[Path]:
    """The files that may hold a split: the `files:` path, or DIR/<name>/<split>-<lang>.<ext>."""
    src = task.source_for(split, lang)
    if src.files is not None:
        return [src.local_path(split, lang)]
    ddir = data_dir_from_env(data_dir)
    if ddir is None:
        return []
    folder = ddir / (src.data_dir_name or task.name)
    return [folder / f"{split}-{lang}.{ext}" for ext in task.task_type.extensions]


def local_file(task: TaskSpec, split: str, lang: str, data_dir: str | Path | None) -> Path | None:
    """The local file to read, None when the split comes from the hub; an error if expected but absent."""
    cands = local_candidates(task, split, lang, data_dir)
    if not cands:
        return None
    found = [c for c in cands if c.is_file()]
    if len(found) > 1:
        raise XltError(f"several files hold {task.name} {split}-{lang}: {', '.join(map(str, found))}; keep one")
    if found:
        return found[0]
    src = task.source_for(split, lang)
    if src.files is not None:
        raise XltError(f"task {task.name!r}: expected {cands[0]} for split {split!r}, language {lang!r} "
                       f"(from `files:` in {task.path}); create it or fix the pattern")
    folder = cands[0].parent
    present = sorted(p.name for p in folder.glob("*-*.*")) if folder.is_dir() else []
    hint = f"; {folder} has: {', '.join(present[:20])}" if present else f"; {folder} does not exist"
    hub = f" (the hub has it: {src.describe(split, lang)}; drop --data-dir to download it)" if src.hub else ""
    others = "/.".join(list(task.task_type.extensions)[1:])
    raise XltError(f"missing local data for task {task.name!r} split {split!r} language {lang!r}: expected "
                   f"{cands[0]}" + (f" (or .{others})" if others else "") + f"{hint}{hub}")


def available_splits(task: TaskSpec | str, data_dir: str | Path | None = None,
                     splits: Sequence[str] | None = None) -> dict[str, tuple[str, ...]]:
    """For each split (default: the task's eval_splits), the languages that can be read.

    Hub sources and `files:` sources count as available (the hub has every declared split; a file the task
    file names must be there, and reading it says so when it is not); a `--data-dir` folder only where the
    file exists. A runner evaluates what is here and records what is missing, e.g. with ../shared/data,
    which has validation files but no test split.
    """
    from xlt.tasks.registry import get_task

    task = get_task(task)
    out: dict[str, tuple[str, ...]] = {}
    for split in splits or task.eval_splits:
        langs = []
        for lang in task.languages:
            cands = local_candidates(task, split, lang, data_dir)
            if not cands or task.source_for(split, lang).files is not None or any(c.is_file() for c in cands):
                langs.append(lang)
        out[split] = tuple(langs)
    return out


@dataclass
class DataPlan:
    """What a run of a task will read, known before anything is read: the run's data identity."""

    reads: list[tuple[str, str]]            # (split, lang): source train and dev, then each readable eval split
    files: list[Path]                       # the local files among them
    hub: list[str]                          # "<hub id>@<revision>" of the hub sources among them
    skipped: dict[str, list[str]]           # eval split -> languages with no file under --data-dir
    looked_for: dict[str, str]              # eval split -> the files looked for, as one pattern

    @property
    def revision(self) -> str:
        """The data identity that goes into the spec (and so the run id): the hub sources' pinned revisions
        and a content fingerprint of the local files; it changes whenever the data read changes."""
        parts = sorted(set(self.hub))
        if self.files:
            parts.append(fingerprint(self.files))
        return ", ".join(parts)


def fingerprint(paths: Sequence[Path]) -> str:
    """`local-sha256:<hash>` of the files' names and contents (not their folders: moving the data keeps it)."""
    per_file = []
    for path in set(Path(p).resolve() for p in paths):
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        per_file.append(f"{path.name}:{h.hexdigest()}")
    return "local-sha256:" + hashlib.sha256("\n".join(sorted(per_file)).encode()).hexdigest()[:16]


def _looked_for(task: TaskSpec, split: str, langs: Sequence[str], data_dir: str | Path | None) -> str:
    """One pattern for the files looked for, e.g. `DIR/xnli/test-{en,fr}.{tsv,csv,jsonl,parquet}`."""
    cands = local_candidates(task, split, langs[0], data_dir)
    folder = cands[0].parent
    lang_part = langs[0] if len(langs) == 1 else "{" + ",".join(langs) + "}"
    exts = [c.suffix.lstrip(".") for c in cands]
    ext_part = exts[0] if len(exts) == 1 else "{" + ",".join(exts) + "}"
    return f"{folder}/{split}-{lang_part}.{ext_part}"


def plan_data(task: TaskSpec | str, data_dir: str | Path | None = None,
              languages: Sequence[str] | None = None, fine_tunes: bool = True,
              splits: Sequence[str] | None = None) -> DataPlan:
    """The (split, language) pairs a run reads and where from. The source language's train and dev split are
    required (for a type that trains, in a run that fine-tunes: not for `xlt eval`, `fine_tunes=False`), and so
    is every file a `files:` source names: a missing one is an XltError naming the path. `splits`: the
    evaluation splits read (default: the task's `eval_splits`).
    With --data-dir an evaluation split without a file is skipped (real suites lack splits: UD-POS has no
    dev set for some languages, test labels are often withheld) and reported in `skipped`/`looked_for`."""
    from xlt.tasks.registry import get_task

    task = get_task(task)
    langs = list(languages) if languages is not None else list(task.languages)
    plan = DataPlan([], [], [], {}, {})

    def add(split: str, lang: str) -> None:
        if (split, lang) in plan.reads:
            return
        local = local_file(task, split, lang, data_dir)   # raises when a required file is missing
        plan.reads.append((split, lang))
        if local is not None:
            plan.files.append(local)
        else:
            src = task.source_for(split, lang)
            plan.hub.append(f"{src.hub}@{src.revision or 'main'}")

    for split in task.task_type.required_splits(task) if fine_tunes else ():   # train and dev, to fine-tune
        add(split, task.source_lang)
    for split in splits if splits is not None else task.eval_splits:
        missing = []
        for lang in langs:
            cands = local_candidates(task, split, lang, data_dir)
            if cands and task.source_for(split, lang).files is None and not any(c.is_file() for c in cands):
                missing.append(lang)
            else:
                add(split, lang)
        if missing:
            plan.skipped[split] = missing
            plan.looked_for[split] = _looked_for(task, split, missing, data_dir)
    return plan


def _hub_unreachable(exc: BaseException) -> bool:
    from xlt import hub

    if hub.is_offline():
        return True
    text = f"{type(exc).__name__} {exc}".lower()
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    return any(w in text for w in ("connection", "offline", "timed out", "timeout", "resolve", "network",
                                   "couldn't reach", "unreachable", "max retries"))


def _load_hub(task: TaskSpec, src: Source, split: str, lang: str):
    from xlt import hub

    hub.is_offline()   # probed once: with no network datasets then fails at once (or reads its cache)
    try:
        import datasets
    except ImportError:  # pragma: no cover - a dependency
        raise XltError("the `datasets` package is needed to read from the hub; pip install datasets, "
                       "or pass --data-dir DIR") from None
    config, hub_split = src.config_for(lang), src.source_split(split)
    data_files = src.data_files_for(split, lang)
    what = f"{src.hub}" + (f" config {config}" if config else "") + (f" files {data_files}" if data_files else "") \
        + f" split {hub_split}"
    local = f"{src.data_dir_name or task.name}/{split}-{lang}.{next(iter(task.task_type.extensions))}"
    try:
        kwargs = {"data_files": {hub_split: data_files}} if data_files else {}
        ds = datasets.load_dataset(src.hub, name=config, split=hub_split, revision=src.revision, **kwargs)
    except Exception as exc:  # datasets raises many types; classify them into one clear message
        if _hub_unreachable(exc):
            raise XltError(f"cannot load {what} from the Hugging Face hub: {hub.offline_reason()}, and it is not "
                           f"in the datasets cache. Pass --data-dir DIR (or set XLT_DATA_DIR) with the split as "
                           f"DIR/{local}") from None
        raise XltError(f"could not load {what} at revision {src.revision}: {type(exc).__name__}: {exc}; check "
                       f"the task file {task.path} (hub id, config, revision) or pass --data-dir DIR") from None
    origin = f"hub:{src.hub}@{src.revision or 'main'}/{data_files or config or ''}/{hub_split}"
    # datasets' fingerprint follows the files it read, so an unpinned revision that moves changes the key
    return ds.to_pandas(), origin, f"{origin}#{getattr(ds, '_fingerprint', '')}"


def load_split(task: TaskSpec | str, split: str, lang: str, data_dir: str | Path | None = None) -> SplitData:
    """Read one split of one language into the task type's row schema (see the module docstring)."""
    import pandas as pd

    from xlt.tasks.registry import get_task

    task = get_task(task)
    ttype = task.task_type
    src = task.source_for(split, lang)
    local = local_file(task, split, lang, data_dir)
    if local is not None:
        fmt = src.format or ttype.extensions.get(local.suffix.lstrip("."))
        raw = ttype.read_source_file(local, fmt, src)
        st = local.stat()
        origin, revision = str(local.resolve()), None
        source_key = f"file:{origin}:{st.st_size}:{st.st_mtime_ns}"
    else:
        raw, origin, source_key = _load_hub(task, src, split, lang)
        revision = src.revision or "main"
    where = f"{task.name} {split}-{lang} ({origin})"
    if len(raw) == 0:
        raise XltError(f"empty split: {where} has no rows; check the file or the source's split name")
    missing = [src.column(role) for role in ttype.columns if src.column(role) not in raw.columns]
    if missing:
        raise XltError(f"column(s) {', '.join(map(repr, missing))} missing from {where}; it has: "
                       f"{', '.join(map(str, raw.columns))}. Fix `columns:` in {task.path} or the file's header")
    prefix = src.prefix_for(lang)
    if prefix is not None:   # one hub config mixing languages, told apart by the id (TyDiQA-GoldP)
        ids = raw[src.column("id")] if "id" in ttype.columns else raw["id"]
        raw = raw[ids.astype(str).str.startswith(prefix).to_numpy()].reset_index(drop=True)
        if len(raw) == 0:
            raise XltError(f"no row of {where} has an id starting with {prefix!r}; check `id_prefix:`")
    frame = pd.DataFrame({role: raw[src.column(role)].reset_index(drop=True) for role in ttype.columns})
    frame = ttype.prepare(frame, src, task, where)
    dropped = int(frame.attrs.pop("dropped", 0))
    if len(frame) == 0:
        raise XltError(f"empty split: no usable row in {where}")
    key = hashlib.sha256(json.dumps([source_key, src.to_dict(), task.label_names, task.version, task.type],
                                    sort_keys=True, default=str).encode()).hexdigest()
    return SplitData(task=task.name, task_type=task.type, split=split, lang=lang, frame=frame, origin=origin,
                     revision=revision, label_names=task.label_names, source_key=key, dropped=dropped,
                     options=task.option_values)


def describe_sources(task: TaskSpec, data_dir: str | Path | None = None) -> list[dict]:
    """Where each (split, language) comes from: for `xlt tasks show`."""
    rows = []
    for split in task.splits:
        langs = [task.source_lang] if split in (task.train_split, task.dev_split) and split not in \
            task.eval_splits else list(task.languages)
        for lang in langs:
            src = task.source_for(split, lang)
            cands = local_candidates(task, split, lang, data_dir)
            if cands:
                found = [c for c in cands if c.is_file()]
                where = str(found[0]) if found else f"{cands[0]} (missing)"
            else:
                where = src.describe(split, lang)
            rows.append({"split": split, "lang": lang, "from": where})
    return rows
