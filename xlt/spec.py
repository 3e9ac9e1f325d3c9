"""RunSpec: the frozen description of one run, its hyperparameter presets, and its run_id.

The same spec always maps to the same `run_id` (a hash of its canonical JSON), which is how records are
found again for resume and de-duplication. Everything that changes a run's numbers is in the spec; where it
ran (device, paths, worker) is not, and goes into the record's `env` instead.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from xlt.errors import XltError

PROTOCOLS = ("zero-shot",)
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
    max_grad_norm: float = 1.0
    adam_eps: float = 1e-6
    eval_every: int = 0           # steps between source-dev evaluations; 0 = once per epoch
    eval_batch_size: int = 64
    gradient_checkpointing: bool = False
    sift: bool = False            # scale-invariant fine-tuning (DeBERTa paper, section 3.5)
    sift_lambda: float = 1.0      # weight of the symmetric-KL term
    sift_lr: float = 1e-4         # step size of the one normalised ascent step
    sift_init: float = 1e-5       # std of the initial perturbation

    @property
    def per_step_batch(self) -> int:
        return self.batch_size // self.grad_accum


HPARAM_NAMES = tuple(f.name for f in dataclasses.fields(Hyperparams))

# Presets: (model-name pattern, task pattern, values). Later rules override earlier ones that also match.
# Patterns match the registry short name, or the folder name of a local checkpoint.
PRESETS: list[tuple[str, str, dict[str, Any]]] = [
    # XTREME (Hu et al., 2020), scripts/train_xnli.sh and train_pawsx.sh: lr 2e-5, batch 8 x grad-acc 4 = 32,
    # 5 epochs, max length 128, no warmup.
    ("*", "*", dict(lr=2e-5, batch_size=32, epochs=5, max_seq_len=128, warmup_steps=0)),
    # XTREME uses lr 3e-5 for XLM-R large on XNLI/PAWS-X.
    ("*xlm-roberta-large*", "*", dict(lr=3e-5)),
    # DeBERTa-v3 English MNLI recipe (microsoft/DeBERTa experiments/glue/mnli.sh, base):
    # lr 1.5e-5, batch 64, 3 epochs, warmup 1000, max length 256.
    ("*deberta-v3-*", "*", dict(lr=1.5e-5, batch_size=64, epochs=3, warmup_steps=1000, max_seq_len=256)),
    # mDeBERTa-v3-base XNLI zero-shot recipe (microsoft/DeBERTa README, experiments/xnli):
    # lr 2e-5, batch 32, 6 epochs, warmup 3000 steps, max length 256.
    ("*mdeberta-v3-*", "*", dict(lr=2e-5, batch_size=32, epochs=6, warmup_steps=3000, max_seq_len=256)),
]


def preset_for(model: str, task: str) -> dict[str, Any]:
    key = Path(model).name if ("/" in model and Path(model).exists()) else model.split("/")[-1]
    values: dict[str, Any] = {}
    for model_pat, task_pat, rule in PRESETS:
        if fnmatch.fnmatch(key.lower(), model_pat) and fnmatch.fnmatch(task, task_pat):
            values.update(rule)
    return values


def coerce_hparams(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Check names and convert string values (from the CLI or a sweep file) to each field's type."""
    types = {f.name: f.type for f in dataclasses.fields(Hyperparams)}
    out: dict[str, Any] = {}
    for name, value in overrides.items():
        name = name.replace("-", "_")
        if name not in types:
            raise XltError(f"unknown hyperparameter {name!r}; valid names: {', '.join(HPARAM_NAMES)}")
        kind = types[name]
        try:
            if kind == "bool" and isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                value = value.lower() in ("true", "1", "yes")
            elif kind == "int":
                value = int(float(value)) if float(value).is_integer() else int(value)
            elif kind == "float":
                value = float(value)
        except (TypeError, ValueError):
            raise XltError(f"hyperparameter {name}={value!r} is not a valid {kind}") from None
        out[name] = value
    return out


def parse_sets(items: Iterable[str]) -> dict[str, str]:
    """['lr=2e-5', 'epochs=3'] -> {'lr': '2e-5', 'epochs': '3'} (values are coerced by coerce_hparams)."""
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
    protocol: str = "zero-shot"     # train on the source language, select on its dev set, test everywhere
    impl: str = "auto"              # auto = native for DeBERTa, transformers otherwise
    precision: str = "auto"         # auto = bf16 where supported, else fp32; never fp16 for mDeBERTa
    data_source: str = "hub"        # "hub" or "local" (--data-dir); the path itself is not part of the identity
    data_revision: str | None = None
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    hparams: Hyperparams = field(default_factory=Hyperparams)

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise XltError(f"unknown protocol {self.protocol!r}; available: {', '.join(PROTOCOLS)}")
        if self.precision not in PRECISIONS:
            raise XltError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.impl not in IMPLS:
            raise XltError(f"unknown implementation {self.impl!r}; choose one of {', '.join(IMPLS)}")
        h = self.hparams
        if h.batch_size < 1 or h.grad_accum < 1 or h.batch_size % h.grad_accum:
            raise XltError(f"batch size {h.batch_size} must be a positive multiple of --grad-accum {h.grad_accum}")
        if h.max_seq_len < 8:
            raise XltError(f"--max-seq-len {h.max_seq_len} is too short; use at least 8 (128 is the XTREME default)")

    @classmethod
    def create(cls, model: str, task: str, seed: int = 1, overrides: Mapping[str, Any] | None = None,
               **fields: Any) -> "RunSpec":
        """The preset for (model, task), then `overrides` (hyperparameter name -> value) on top."""
        values = preset_for(model, task)
        values.update(coerce_hparams(overrides or {}))
        return cls(model=model, task=task, seed=seed, hparams=Hyperparams(**values), **fields)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunSpec":
        data = dict(data)
        data["hparams"] = Hyperparams(**data.get("hparams", {}))
        return cls(**data)

    @property
    def run_id(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def model_slug(self) -> str:
        """A filesystem-safe name for the model: the short name, or a local folder's name."""
        name = self.model.rstrip("/").split("/")[-1] or "model"
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)

    def label(self) -> str:
        return f"{self.model_slug}/{self.task}/seed{self.seed}"
