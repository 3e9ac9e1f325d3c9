"""RunSpec: the frozen description of one run, and its run_id.

The same spec always maps to the same `run_id` (a hash of its canonical JSON), which is how records are
found again for resume and de-duplication. Everything that changes a run's numbers is in the spec; where it
ran (device, paths, worker) is not, and goes into the record's `env` instead. Where each hyperparameter
comes from (xlt's default, the task file, a model rule, the user) is `xlt.recipes`, whose `build_spec` is the
one place specs are built; this module imports nothing of xlt but its errors (docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from xlt.errors import XltError
from xlt.names import check_name, is_name

PROTOCOLS = ("zero-shot", "evaluate")
# Protocols that evaluate a checkpoint as it is (`xlt eval`: no training, no selection), and the word reports add
# to such a record's row ("mdeberta-xnli (evaluated)") so that it is never averaged with fine-tuned seeds.
EVALUATE_ONLY = {"evaluate": "evaluated"}
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
IMPLS = ("auto", "native", "hf")


@dataclass(frozen=True)
class Hyperparams:
    lr: float = 2e-5
    epochs: float = 5.0
    batch_size: int = 32          # effective batch: per-step batch x grad_accum
    grad_accum: int = 1
    max_seq_len: int = 128
    warmup_steps: int = 0
    weight_decay: float = 0.01    # never applied to biases and LayerNorm weights
    max_grad_norm: float = 1.0    # 0 = no clipping
    adam_eps: float = 1e-6
    eval_every: int = 0           # steps between source-dev evaluations; 0 = once per epoch
    eval_batch_size: int = 64
    window_step: int = 128        # tokens between the starts of consecutive windows over a long text
    #                               (XTREME's `doc_stride`; NOT transformers' tokenizer `stride`, an overlap)
    gradient_checkpointing: bool = False
    sift: bool = False            # scale-invariant fine-tuning (DeBERTa paper, section 3.5)
    sift_lambda: float = 1.0      # weight of the symmetric-KL term
    sift_lr: float = 1e-4         # step size of the one normalised ascent step
    sift_init: float = 1e-5       # std of the initial perturbation

    @property
    def per_step_batch(self) -> int:
        return self.batch_size // self.grad_accum


HPARAM_NAMES = tuple(f.name for f in dataclasses.fields(Hyperparams))

# The range each numeric hyperparameter must lie in: (lowest, lowest allowed?, highest). Every bound is one
# the training code can hold: AdamW turns lr / (1 - beta1) into a float32 (max 3.4e38), so --lr 1e300 (or 1e38)
# overflowed there with a RuntimeError; up to 1e36 a too-large lr ends as a clean TrainingDiverged.
_RANGES: dict[str, tuple[float, bool, float]] = {
    "lr": (0, False, 1e36), "epochs": (0, False, 10_000), "batch_size": (1, True, 1 << 20),
    "grad_accum": (1, True, 1 << 20), "max_seq_len": (8, True, 1 << 16), "warmup_steps": (0, True, 1 << 40),
    "weight_decay": (0, True, 10.0), "max_grad_norm": (0, True, 1e9), "adam_eps": (0, False, 1.0),
    "eval_every": (0, True, 1 << 40), "eval_batch_size": (1, True, 1 << 20), "window_step": (1, True, 1 << 16),
    "sift_lambda": (0, True, 1e6), "sift_lr": (0, True, 1e3), "sift_init": (0, True, 1e3),
}


def check_hparams(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Check names and ranges and convert values (strings from the CLI, a sweep or a task file) to each
    field's type. Anything wrong is an XltError naming the hyperparameter and what it accepts."""
    types = {f.name: f.type for f in dataclasses.fields(Hyperparams)}
    out: dict[str, Any] = {}
    for name, value in overrides.items():
        name = str(name).replace("-", "_")
        if name not in types:
            raise XltError(f"unknown hyperparameter {name!r}; valid names: {', '.join(HPARAM_NAMES)}")
        kind = types[name]
        try:
            if kind == "bool":
                if isinstance(value, str):
                    if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError(value)
                    value = value.lower() in ("true", "1", "yes")
                elif not isinstance(value, bool):
                    raise ValueError(value)
            elif kind == "int":
                number = float(value)
                if not math.isfinite(number) or not number.is_integer():
                    raise ValueError(value)
                value = int(number)
            elif kind == "float":
                value = float(value)
                if not math.isfinite(value):
                    raise ValueError(value)
        except (TypeError, ValueError, OverflowError):
            raise XltError(f"hyperparameter {name}={value!r} is not a valid {kind}") from None
        if name in _RANGES:
            low, inclusive, high = _RANGES[name]
            if value < low or (value == low and not inclusive) or value > high:
                bound = f">= {low:g}" if inclusive else f"> {low:g}"
                raise XltError(f"hyperparameter {name}={value!r} is out of range; it must be {bound} and "
                               f"<= {high:g}")
        out[name] = value
    return out



def parse_sets(items: Iterable[str]) -> dict[str, str]:
    """['lr=2e-5', 'epochs=3'] -> {'lr': '2e-5', 'epochs': '3'} (values are checked by check_hparams)."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise XltError(f"--set {item!r} is not NAME=VALUE, e.g. --set lr=2e-5")
        out[name.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class RunSpec:
    model: str                      # registry short name, hub id, or local checkpoint directory
    task: str
    seed: int = 1
    protocol: str = "zero-shot"     # train on the source language, select on its dev set, test everywhere;
    #                                 "evaluate": the checkpoint's own head as it is (xlt eval), no training
    impl: str = "auto"              # auto = native for DeBERTa, transformers otherwise
    precision: str = "auto"         # auto = bf16 where supported, else fp32; never fp16 for mDeBERTa
    data_source: str = "hub"        # "hub" or "local" (--data-dir); the path itself is not part of the identity
    data_revision: str | None = None
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    hparams: Hyperparams = field(default_factory=Hyperparams)
    languages: tuple[str, ...] | None = None   # evaluate only these (the source language always); None = all
    splits: tuple[str, ...] | None = None      # evaluate only these of the task's eval splits; None = all
    task_revision: str | None = None   # the task file's content that reaches data and metrics (TaskSpec.revision)
    model_revision: str | None = None  # the checkpoint's identity: hub commit, or a fingerprint of local files
    # protocol "evaluate": (checkpoint label, task label) pairs the user gave (`--label-map`), sorted; None: by name
    label_map: tuple[tuple[str, str], ...] | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise XltError(f"unknown protocol {self.protocol!r}; available: {', '.join(PROTOCOLS)}")
        if self.precision not in PRECISIONS:
            raise XltError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.impl not in IMPLS:
            raise XltError(f"unknown implementation {self.impl!r}; choose one of {', '.join(IMPLS)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise XltError(f"seed {self.seed!r} must be an integer from 0 to {2**32 - 1}")
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise XltError(f"{name.replace('_', '-')} {value!r} must be a positive integer (or unset for all)")
        if self.languages is not None:   # one experiment, one id: sorted, each language once
            if isinstance(self.languages, str) or not all(isinstance(x, str) and x for x in self.languages):
                raise XltError(f"languages {self.languages!r} must be a list of language codes")
            if not self.languages:
                raise XltError("--languages is empty; list the codes to evaluate (e.g. --languages en,sw) or drop "
                               "the option to evaluate every language")
            object.__setattr__(self, "languages", tuple(sorted(set(self.languages))))
        if self.splits is not None:
            if isinstance(self.splits, str) or not self.splits or not all(isinstance(x, str) and x
                                                                            for x in self.splits):
                raise XltError(f"splits {self.splits!r} must be a non-empty list of split names (e.g. --split test)")
            object.__setattr__(self, "splits", tuple(sorted(set(self.splits))))
        _check_names(self)
        if self.label_map is not None:
            object.__setattr__(self, "label_map", _check_label_map(self.label_map, self.fine_tunes))
        h = self.hparams
        if h.batch_size < 1 or h.grad_accum < 1 or h.batch_size % h.grad_accum:
            raise XltError(f"batch size {h.batch_size} must be a positive multiple of --grad-accum {h.grad_accum}")
        if h.max_seq_len < 8:
            raise XltError(f"--max-seq-len {h.max_seq_len} is too short; use at least 8 (128 is the XTREME default)")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["languages"] = list(self.languages) if self.languages is not None else None
        out["splits"] = list(self.splits) if self.splits is not None else None
        out["label_map"] = [list(pair) for pair in self.label_map] if self.label_map is not None else None
        for name in ("splits", "label_map"):   # absent when unset: a record's spec reads as before they existed
            if out[name] is None:                 # (reports group runs by their spec)
                del out[name]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunSpec":
        data = dict(data)
        data["hparams"] = Hyperparams(**data.get("hparams", {}))
        for name in ("languages", "splits"):
            if data.get(name) is not None:
                data[name] = tuple(data[name])
        if data.get("label_map") is not None:
            data["label_map"] = tuple(tuple(pair) for pair in data["label_map"])
        return cls(**data)

    def identity(self) -> dict[str, Any]:
        """What the run_id hashes: the spec, minus fields added later while they hold their "unset" value and
        hyperparameters at a default that older specs did not have, so older run ids stay valid."""
        out = self.to_dict()
        for name in ("languages", "task_revision", "model_revision"):
            if out[name] is None:
                del out[name]
        if out["hparams"].get("window_step") == Hyperparams.window_step:
            del out["hparams"]["window_step"]
        return out

    @property
    def fine_tunes(self) -> bool:
        """Does this run train (and select)? False for a protocol that evaluates the checkpoint as it is."""
        return self.protocol not in EVALUATE_ONLY

    @property
    def run_id(self) -> str:
        canonical = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def model_slug(self) -> str:
        return model_slug(self.model)

    def label(self) -> str:
        return f"{self.model_slug}/{self.task}/seed{self.seed}"


def _check_names(spec: "RunSpec") -> None:
    """The task, the model's slug and the languages become parts of file paths: plain names only (xlt.names)."""
    check_name("task name", spec.task, "the task's file name (without .yaml) is its name")
    if not is_name(spec.model_slug):
        raise XltError(f"model {spec.model!r} has no name of its own (its last part is "
                       f"{readable_model_name(spec.model).split('/')[-1]!r}); pass the checkpoint folder's own path")
    for lang in spec.languages or ():
        check_name("language", lang, "use the task's language codes (xlt tasks show TASK)")
    for split in spec.splits or ():
        check_name("split", split, "use the task's evaluation splits (xlt tasks show TASK)")


def _check_label_map(pairs: Any, fine_tunes: bool) -> tuple[tuple[str, str], ...]:
    """`--label-map` as one canonical value: (checkpoint label, task label) pairs of non-empty strings, each
    checkpoint label once, sorted; only for a protocol that evaluates a checkpoint's own head."""
    if fine_tunes:
        raise XltError("--label-map applies to `xlt eval` (protocol evaluate) only: a fine-tuned head learns the "
                       "task's own labels")
    if isinstance(pairs, Mapping):
        pairs = list(pairs.items())
    if isinstance(pairs, str) or not all(isinstance(p, (tuple, list)) and len(p) == 2 and
                                         all(isinstance(x, str) and x.strip() for x in p) for p in pairs):
        raise XltError(f"label map {pairs!r} must be pairs of label names, e.g. --label-map "
                       "LABEL_0=entailment,LABEL_1=neutral,LABEL_2=contradiction")
    pairs = tuple(sorted((a.strip(), b.strip()) for a, b in pairs))
    if not pairs:
        raise XltError("--label-map is empty; give CHECKPOINT_LABEL=TASK_LABEL pairs or drop the option")
    sources = [a for a, _ in pairs]
    twice = sorted({a for a in sources if sources.count(a) > 1})
    if twice:
        raise XltError(f"--label-map names checkpoint label(s) {', '.join(twice)} more than once; map each to one "
                       "task label")
    return pairs


def parse_label_map(text: str) -> tuple[tuple[str, str], ...]:
    """'LABEL_0=entailment,LABEL_1=neutral' -> (("LABEL_0", "entailment"), ("LABEL_1", "neutral"))."""
    pairs = []
    for item in (x for x in str(text).split(",") if x.strip()):
        source, sep, target = item.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise XltError(f"--label-map item {item.strip()!r} is not CHECKPOINT_LABEL=TASK_LABEL, e.g. --label-map "
                           "LABEL_0=entailment,LABEL_1=neutral,LABEL_2=contradiction")
        pairs.append((source.strip(), target.strip()))
    if not pairs:
        raise XltError("--label-map is empty; give CHECKPOINT_LABEL=TASK_LABEL pairs or drop the option")
    return tuple(pairs)


def model_slug(model: str) -> str:
    """A filesystem-safe name for a model: the short name, a local folder's name, the repo name of a hub cache
    snapshot folder (the folder its records are filed in)."""
    name = readable_model_name(model).split("/")[-1] or "model"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def readable_model_name(model: str) -> str:
    """The name a person reads for a model string: a registry name or hub id as it is; a local checkpoint by its
    folder's name, and a hub cache snapshot (`.../models--org--name/snapshots/<sha>`) by its repo name.
    `xlt run --name` replaces it; either way the full path stays in the spec and the record."""
    text = str(model).rstrip("/\\")
    parts = re.split(r"[/\\]", text)
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
        return parts[-3].split("--")[-1] or text
    looks_like_path = text.startswith((".", "/", "~", "\\")) or len(parts) > 2 or ":" in parts[0]
    return (parts[-1] or text) if looks_like_path else text

