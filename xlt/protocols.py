"""Transfer protocols: the one registry of what each protocol trains on, how many models, what it evaluates.

    PROTOCOLS["translate-train"].trains      -> True
    plan_models(PROTOCOLS["few-shot"], layout, has=...)   -> [ModelPlan("en", ...), ModelPlan("fr", ...), ...]

A protocol is a named way of using the source language's training data and (for all but zero-shot) data in or
from the target languages. Each `ModelPlan` says what one model trains on (its parts are mixed and shuffled
together), the split its steps are selected on, the model it continues from and exactly which (split,
language) it predicts; the runner (xlt/runner.py) follows the plans in order and the record names, for each
language, the model that produced its numbers. Everything here is a plain value: the task's layout comes in
as a `Layout`, and which data exists as `has(ref)` (xlt/tasks/protocol_data.py answers it from the task file's
`protocols:` block, the hub and --data-dir), so the plans are decided before anything is read.

    zero-shot            one model: source train, selected on source dev, predicts every language
    translate-train-all  one model: source train + every target's machine-translated train split, selected on
                         source dev (XTREME-R's strongest baseline, Ruder et al. 2021), predicts every language
    translate-train      per language a model on its translated train split (the source's own for the source),
                         selected on that language's dev split as XTREME's run_classify.py does
                         (`--train_language L`: its best checkpoint is chosen on L's dev set), predicts that language
    translate-test       the zero-shot source model; each target's evaluation splits are read in their English
                         (source-language) translation, row by row the original's examples and gold labels
    few-shot             the zero-shot source model, then per target language a copy continued on K examples
                         drawn with the run's seed from a split the task file names (never evaluated for that
                         language), with FEW_SHOT_RECIPE (Lauscher et al. 2020, "From Zero to Hero")

    evaluate             no training: the checkpoint's own trained head (`xlt eval`, xlt.checkpoint_eval), as it
                         is, predicts every language; its rows in reports say "(evaluated)" (`row_word`)
This module imports nothing of xlt but its errors (it is on the ground floor, beside spec.py).
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from xlt.errors import XltError

ZERO_SHOT = "zero-shot"
EVALUATE = "evaluate"
ORIGINAL = "original"                 # a split as the task's sources serve it
TRANSLATE_TRAIN = "translate-train"   # the train split machine-translated into a target language
TRANSLATE_TEST = "translate-test"     # a target language's evaluation split machine-translated into the source
FEW_SHOT = "few-shot"                 # the split a target language's shots are drawn from
DATA_KINDS = (TRANSLATE_TRAIN, TRANSLATE_TEST, FEW_SHOT)
MAX_SHOTS = 1_000_000


@dataclass(frozen=True)
class Protocol:
    name: str
    trains: bool                       # fine-tunes a model (False: evaluates the checkpoint as it is)
    summary: str                       # one line: what it trains on, selects on and evaluates
    data: tuple[str, ...] = ()         # data kinds beyond the task's own splits (DATA_KINDS) it reads
    takes_shots: bool = False          # needs --shots K
    row_word: str | None = None        # a word reports add to a row of this protocol ("m (evaluated)")


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol(ZERO_SHOT, True, "train on the source language, select on its dev split, evaluate every language"),
    Protocol("translate-train-all", True, "one model on the source train split plus every target language's "
             "translated train split, selected on the source dev split", data=(TRANSLATE_TRAIN,)),
    Protocol("translate-train", True, "per language a model on its translated train split, selected on that "
             "language's dev split (XTREME)", data=(TRANSLATE_TRAIN,)),
    Protocol("translate-test", True, "the source-language model evaluated on each target's evaluation splits "
             "translated into the source language", data=(TRANSLATE_TEST,)),
    Protocol(FEW_SHOT, True, "the source-language model continued per target language on K examples of it "
             "(Lauscher et al. 2020)", data=(FEW_SHOT,), takes_shots=True),
    Protocol(EVALUATE, False, "no training: the checkpoint's own head evaluated as it is on every language "
             "(xlt eval)", row_word="evaluated"),
)}

# Continuing on the shots (Lauscher et al. 2020, "From Zero to Hero", section 5: fine-tune on the source
# language, then further on k target-language examples). The budget is xlt's fixed choice, the same for every
# task and K: 10 passes over the K examples in batches of 8 (all K when fewer), the run's own learning rate,
# weight decay and clipping, no warmup, a linear decay to 0, and no selection: the last step is evaluated,
# since a few-shot setting has no target-language dev set to select on. Part of a few-shot run's id.
FEW_SHOT_RECIPE = {"epochs": 10.0, "batch_size": 8, "grad_accum": 1, "warmup_steps": 0, "eval_every": 0,
                   "sift": False}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise XltError(f"unknown protocol {name!r}; available: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def check_report_protocol(name: str) -> None:
    """A protocol a report can show on its own (`--protocol`): every one but those that evaluate a checkpoint
    as it is, whose rows ("m (evaluated)") are shown with zero-shot's."""
    if not get_protocol(name).trains:
        raise XltError(f"rows of protocol {name} (a checkpoint evaluated as it is, named \"<model> (evaluated)\") "
                       f"are shown with {ZERO_SHOT}'s: use --protocol {ZERO_SHOT}")


def check_shots(protocol: str, shots: Any) -> None:
    """--shots K goes with a protocol that takes shots, and that protocol needs it (an XltError otherwise)."""
    takes = get_protocol(protocol).takes_shots
    if shots is None:
        if takes:
            raise XltError(f"--protocol {protocol} needs --shots K, the examples per target language (e.g. --shots 10)")
        return
    if not takes:
        raise XltError(f"--shots applies to --protocol {FEW_SHOT} only (this run's protocol is {protocol})")
    if isinstance(shots, bool) or not isinstance(shots, int) or not 1 <= shots <= MAX_SHOTS:
        raise XltError(f"--shots {shots!r} must be an integer from 1 to {MAX_SHOTS:,}")


def few_shot_hparams(hparams: Any, shots: int) -> Any:
    """The run's hyperparameters with FEW_SHOT_RECIPE on top (`hparams`: an xlt.spec.Hyperparams)."""
    return dataclasses.replace(hparams, **{**FEW_SHOT_RECIPE, "batch_size": min(FEW_SHOT_RECIPE["batch_size"], shots)})


def shot_rows(n: int, shots: int, seed: int, lang: str) -> list[int]:
    """The rows (0..n-1, ascending) a run draws as `lang`'s shots: a permutation seeded by the run's seed and the
    language, cut at `shots`. Another seed draws other rows; the same seed always the same ones."""
    import numpy as np

    if shots > n:
        raise XltError(f"--shots {shots} is more than the {n} examples {lang!r} has to draw from")
    rng = np.random.default_rng([seed, zlib.crc32(lang.encode())])
    return sorted(int(i) for i in rng.permutation(n)[:shots])


# --------------------------------------------------------------------------------------------------
# Plans


@dataclass(frozen=True)
class DataRef:
    """One (split, language) a run reads, and in which form (`kind`, one of ORIGINAL and DATA_KINDS)."""

    split: str
    lang: str
    kind: str = ORIGINAL

    def __str__(self) -> str:
        return f"{self.split}/{self.lang}" + ("" if self.kind == ORIGINAL else f" ({self.kind})")


@dataclass(frozen=True)
class ModelPlan:
    """One model of a run: what it trains on (mixed and shuffled together), what selects its step (None: the
    last step), the model it continues from (None: the checkpoint, freshly loaded), and what it predicts."""

    key: str                           # its name in the record: a language, or "all" (translate-train-all)
    train: tuple[DataRef, ...]
    select: DataRef | None
    predicts: tuple[DataRef, ...]
    start: str | None = None           # few-shot: the source model's key
    shots: int | None = None           # few-shot: K, and FEW_SHOT_RECIPE for its training

    @property
    def languages(self) -> list[str]:
        return list(dict.fromkeys(ref.lang for ref in self.predicts))

    def describe(self) -> dict[str, Any]:
        return {"train": [str(r) for r in self.train], "selected_on": str(self.select) if self.select else None,
                "continues": self.start, "shots": self.shots, "predicts": [str(r) for r in self.predicts]}


@dataclass(frozen=True)
class Layout:
    """What a plan needs to know of a task and a run: its splits, languages (in order) and shots."""

    source: str
    train_split: str
    dev_split: str
    eval_splits: tuple[str, ...]
    languages: tuple[str, ...]             # evaluated, the source first or where the task lists it
    shot_split: str | None = None          # few-shot: where shots come from (the task file's, else train_split)
    shots: int | None = None

    @property
    def targets(self) -> list[str]:
        return [lang for lang in self.languages if lang != self.source]


@dataclass
class Plan:
    models: list[ModelPlan]
    missing: dict[str, list[str]] = dataclasses.field(default_factory=dict)   # language -> what it lacks

    @property
    def model_of(self) -> dict[tuple[str, str], str]:
        """(split, language) -> the key of the model that predicts it."""
        return {(ref.split, ref.lang): m.key for m in self.models for ref in m.predicts}


def plan_models(protocol: Protocol | str, layout: Layout, has: Callable[[DataRef], bool]) -> Plan:
    """The models of a run under `protocol` and what each reads. `has(ref)` says whether a (split, language,
    kind) can be read; the source model's train and dev splits are required (planning the data said so already),
    evaluation splits a language lacks are left out as in zero-shot, and a target language that lacks the data
    its model needs (translated train or dev, shots' split) is left out and named in `Plan.missing`."""
    protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
    name, src = protocol.name, layout.source
    train, dev = DataRef(layout.train_split, src), DataRef(layout.dev_split, src)
    plan = Plan([])

    def predicts(langs: Sequence[str], kind: str = ORIGINAL, skip: str | None = None) -> tuple[DataRef, ...]:
        refs = []
        for lang in langs:
            for split in layout.eval_splits:
                if split == skip:
                    continue
                ref = DataRef(split, lang, kind if lang != src else ORIGINAL)
                if has(DataRef(split, lang)) and (ref.kind == ORIGINAL or has(ref)):
                    refs.append(ref)
                elif has(DataRef(split, lang)):
                    plan.missing.setdefault(lang, []).append(str(ref))
        return tuple(refs)

    def lacking(lang: str, refs: Sequence[DataRef]) -> bool:
        gaps = [str(r) for r in refs if not has(r)]
        if gaps:
            plan.missing.setdefault(lang, []).extend(gaps)
        return bool(gaps)

    if not protocol.trains:   # the checkpoint as it is: nothing to train or select on
        plan.models.append(ModelPlan(src, (), None, predicts(layout.languages)))
    elif name in (ZERO_SHOT, TRANSLATE_TEST):
        kind = TRANSLATE_TEST if name == TRANSLATE_TEST else ORIGINAL
        plan.models.append(ModelPlan(src, (train,), dev, predicts(layout.languages, kind)))
    elif name == "translate-train-all":
        parts = [DataRef(layout.train_split, lang, TRANSLATE_TRAIN) for lang in layout.targets]
        parts = [p for p in parts if not lacking(p.lang, [p])]
        plan.models.append(ModelPlan("all", (train, *parts), dev, predicts(layout.languages)))
    elif name == "translate-train":
        plan.models.append(ModelPlan(src, (train,), dev, predicts([src])))
        for lang in layout.targets:
            own = (DataRef(layout.train_split, lang, TRANSLATE_TRAIN), DataRef(layout.dev_split, lang))
            if not lacking(lang, own):
                plan.models.append(ModelPlan(lang, own[:1], own[1], predicts([lang])))
    elif name == FEW_SHOT:
        split = layout.shot_split or layout.train_split
        plan.models.append(ModelPlan(src, (train,), dev, predicts([src])))
        for lang in layout.targets:
            pool = DataRef(split, lang, FEW_SHOT)
            if not lacking(lang, [pool]):
                plan.models.append(ModelPlan(lang, (pool,), None, predicts([lang], skip=split), start=src,
                                             shots=layout.shots))
    else:
        raise XltError(f"protocol {name!r} has no plan in this version of xlt")
    for model in [m for m in plan.models[1:] if not m.predicts]:   # a target model with nothing to evaluate
        plan.models.remove(model)
        plan.missing.setdefault(model.key, []).append("an evaluation split other than its training data")
    return plan
