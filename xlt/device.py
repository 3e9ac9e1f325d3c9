"""Device, precision, autocast, seeding and out-of-memory handling: what training and evaluation share.

Precision: `resolve_precision("auto", device, ...)` is bf16 (autocast; weights and optimizer stay fp32) on a
CUDA device that supports it and on a CPU with native bf16 matrix units (AMX, AVX512-BF16, Arm BF16; see
xlt.models.cpu_features), and fp32 otherwise. On such a CPU bf16 trains mdeberta-v3-base 2.9x faster than fp32
and learns as well (docs/benchmarks.md); without the units bf16 is emulated and slower, so "auto" keeps fp32.
"auto" never picks fp16, and fp16 is refused outright for mDeBERTa, whose fp16 training is known to diverge.
The resolved precision and the reason for it go into the record.

`Device` is the one value training and evaluation take: the torch device, the resolved precision, why, and
its autocast context. The runner builds it once per run (`Device.resolve`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from xlt.errors import XltError


def resolve_device(device: str | None = None) -> torch.device:
    """None/"auto" -> cuda if available, else cpu. An explicit device that is absent is a user error."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise XltError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise XltError(f"--device {device} asked for CUDA but torch sees no GPU here; use --device cpu")
    return dev


def is_mdeberta(model_name: str, family: str | None = None, vocab_size: int | None = None) -> bool:
    """mDeBERTa: by name, or a DeBERTa-v2/v3 with mDeBERTa's 250k multilingual vocabulary."""
    if "mdeberta" in model_name.lower():
        return True
    return bool(family and family.startswith("deberta-v") and family != "deberta-v1"
                and vocab_size and vocab_size >= 250_000)


def precision_reason(precision: str, device: torch.device) -> tuple[str, str]:
    """(precision used, why): the resolution of `precision` on `device`, explained for the record."""
    if precision != "auto":
        return precision, "asked for"
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16", "auto: this GPU supports bf16"
    if device.type == "cpu":
        from xlt.models.cpu_features import bf16_support

        support = bf16_support()
        return ("bf16" if support.native else "fp32"), f"auto: {support}"
    return "fp32", f"auto: fp32 on {device.type}"


def resolve_precision(precision: str, device: torch.device, *, mdeberta: bool = False) -> str:
    """The precision actually used: "fp32", "bf16" or "fp16" (see the module docstring for "auto")."""
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise XltError(f"unknown precision {precision!r}; choose auto, fp32, bf16 or fp16")
    if precision == "fp16" and mdeberta:
        raise XltError("fp16 training of mDeBERTa is known to diverge (NaN losses); use --precision bf16 on a "
                       "GPU that supports it, or --precision fp32")
    return precision_reason(precision, device)[0]


def autocast(device: torch.device, precision: str):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device_type=device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


@dataclass(frozen=True)
class Device:
    """Where and in which precision a run computes: built once, passed to training and evaluation."""

    torch_device: torch.device
    precision: str = "fp32"          # resolved: fp32 | bf16 | fp16
    reason: str = "asked for"        # why this precision (for the record)

    @classmethod
    def resolve(cls, device: str | None = None, precision: str = "auto", *, mdeberta: bool = False) -> "Device":
        """`device` (None/"auto": cuda if present) and `precision` resolved (module docstring)."""
        dev = resolve_device(device)
        used = resolve_precision(precision, dev, mdeberta=mdeberta)
        return cls(dev, used, precision_reason(precision, dev)[1])

    @classmethod
    def of(cls, device: "Device | torch.device | str" = "cpu", precision: str = "fp32") -> "Device":
        """A Device as given, or built from a torch device (name) and a resolved precision."""
        if isinstance(device, Device):
            return device
        return cls(torch.device(device), precision)

    @property
    def type(self) -> str:
        return self.torch_device.type

    def autocast(self):
        return autocast(self.torch_device, self.precision)

    def __str__(self) -> str:
        return str(self.torch_device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def is_out_of_memory(exc: BaseException) -> bool:
    oom_types = tuple(t for t in (getattr(torch, "OutOfMemoryError", None),
                                  getattr(torch.cuda, "OutOfMemoryError", None)) if t is not None)
    if oom_types and isinstance(exc, oom_types):
        return True
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        "out of memory" in text or "can't allocate memory" in text or isinstance(exc, MemoryError))


def oom_error(batch_size: int, grad_accum: int, effective: int, where: str = "training") -> XltError:
    hint = grad_accum * 2
    while effective % hint and hint < effective:
        hint += 1
    return XltError(f"out of memory during {where} at a per-step batch of {batch_size} examples "
                    f"(batch size {effective} / grad-accum {grad_accum}); try --grad-accum {hint} to keep the "
                    f"effective batch with smaller steps, or a shorter --max-seq-len")


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["Device", "resolve_device", "resolve_precision", "precision_reason", "autocast", "seed_everything", "is_mdeberta",
           "is_out_of_memory", "oom_error", "count_parameters"]
