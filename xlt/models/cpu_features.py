"""Does this CPU multiply bf16 natively? The fact `--precision auto` chooses bf16 on.

```python
from xlt.models.cpu_features import bf16_support
support = bf16_support()
support.native          # True on AMX (Sapphire Rapids+) and AVX512-BF16 (Cooper Lake, Zen 4+) x86 CPUs,
                        # and on Arm CPUs with the BF16 extension (Graviton 3+, Neoverse V1/N2)
str(support)            # "native bf16: AVX512-BF16 (/proc/cpuinfo flag avx512_bf16)", for the run record
```

Without such units bf16 matmuls are emulated through fp32 and run slower than fp32. The flags come from
/proc/cpuinfo (Linux: `flags` on x86, `Features` on Arm); where that file is missing, torch's own CPU probes
(`torch.cpu._is_amx_tile_supported`, `torch.cpu._is_avx512_bf16_supported`, private but present since torch
2.3) answer instead. `torch.backends.cpu.get_cpu_capability()` ("AVX512", "AVX2", ...) is recorded too but
decides nothing: it names the vector width torch's kernels use, not whether bf16 dot products exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# (flag, unit), best first: AMX tiles, then AVX512 dot products, then Arm's BF16 extension
BF16_FLAGS = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"), ("bf16", "Arm BF16"))


@dataclass(frozen=True)
class Bf16Support:
    native: bool
    unit: str  # "AMX", "AVX512-BF16", "Arm BF16" or "" when none
    source: str  # where the answer came from
    capability: str  # torch.backends.cpu.get_cpu_capability(), for the record

    def __str__(self) -> str:
        if self.native:
            return f"native bf16: {self.unit} ({self.source}; torch kernels {self.capability})"
        return f"no native bf16 matrix units ({self.source}; torch kernels {self.capability})"


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str] | None:
    """The first processor's feature flags, or None where the file does not exist or lists none."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return None


def _torch_probes() -> set[str]:
    import torch

    found = set()
    for flag, probe in (("amx_bf16", "_is_amx_tile_supported"), ("avx512_bf16", "_is_avx512_bf16_supported")):
        fn = getattr(torch.cpu, probe, None)
        try:
            if fn is not None and fn():
                found.add(flag)
        except Exception:  # a private probe that changed shape: it decides nothing then
            pass
    return found


def bf16_support(cpuinfo: str | Path = "/proc/cpuinfo") -> Bf16Support:
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    flags = cpu_flags(cpuinfo)
    source = f"{cpuinfo} flag"
    if flags is None:
        flags, source = _torch_probes(), "torch.cpu probe"
    for flag, unit in BF16_FLAGS:
        if flag in flags:
            return Bf16Support(True, unit, f"{source} {flag}", capability)
    return Bf16Support(False, "", f"{source}s: none of {', '.join(f for f, _ in BF16_FLAGS)}", capability)


__all__ = ["Bf16Support", "bf16_support", "cpu_flags", "BF16_FLAGS"]
