"""Where a training step's time goes: torch.profiler over one native (or transformers) step at a model's size.

```
xlt bench profile --model mdeberta-v3-base --seq-len 512 --batch-size 8 [--impl hf] [--dtype bf16] \
    [--steps N] [--top N] [--json PATH]
```
Same weights and batches as `xlt bench model` (random weights from the size config, full-length random ids,
cross-entropy on random labels, forward + backward, gradients dropped), under the allocator setting `xlt run`
trains with (`xlt.allocator.keep_freed_memory`, unless --release-freed-memory). After `warmup` untimed steps,
`steps` steps run under the profiler; ops are ranked by self CPU time (time inside the op itself, not its
children), so the shares add up to the step. Matmuls are split by what they multiply: `dense` (2-D weights:
projections, FFN, the classifier) and `attention` (batched 4-D products: QK^T, AV, c2p/p2c and their grads).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from xlt.allocator import keep_freed_memory
from xlt.bench.model import bench_batch, build_pair, run_step
from xlt.errors import XltError
from xlt.models.registry import resolve_model

MATMULS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear"}


@dataclass
class OpShare:
    name: str
    self_s: float  # per step
    share: float  # of the profiled step's total self CPU time
    calls: int  # per step


def _category(name: str, shapes: list) -> str:
    """Matmuls get a suffix by operand rank: 2-D operands are dense layers, >= 3-D are attention products."""
    if name not in MATMULS:
        return name
    ranks = [len(s) for s in shapes if isinstance(s, (list, tuple)) and len(s) > 0]
    return f"{name} (attention)" if ranks and max(ranks) >= 3 else f"{name} (dense)"


def profile_step(model: str, seq_len: int = 512, batch_size: int = 8, impl: str = "native", dtype: str = "fp32",
                 mode: str = "train", steps: int = 1, warmup: int = 1, keep_memory: bool = True,
                 seed: int = 0) -> tuple[list[OpShare], float]:
    """(ops by self CPU time per step, wall seconds per profiled step)."""
    if impl not in ("native", "hf"):
        raise XltError(f"unknown implementation '{impl}'; choose native or hf.")
    info = resolve_model(model)
    config = {k: v for k, v in info.config.items() if k not in ("id2label", "label2id", "num_labels")}
    with keep_freed_memory(keep_memory):
        net = build_pair(config, [impl], seed)[impl]
        batch = bench_batch(config, batch_size, seq_len, seed)
        for _ in range(warmup):
            run_step(net, batch, mode, dtype)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
            import time

            t0 = time.perf_counter()
            for _ in range(steps):
                run_step(net, batch, mode, dtype)
            wall = (time.perf_counter() - t0) / steps
    totals: dict[str, list[float]] = {}
    for ev in prof.key_averages(group_by_input_shape=True):
        key = _category(ev.key, ev.input_shapes)
        t = totals.setdefault(key, [0.0, 0])
        t[0] += ev.self_cpu_time_total / 1e6
        t[1] += ev.count
    total = sum(t for t, _ in totals.values()) or 1.0
    ops = [OpShare(name, t / steps, t / total, n // steps) for name, (t, n) in totals.items()]
    return sorted(ops, key=lambda o: -o.self_s), wall
