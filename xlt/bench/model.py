"""`xlt bench model`: native DeBERTa vs transformers on the same random weights at a model's real size.

What is measured, and how
-------------------------
* Weights: the transformers `*ForSequenceClassification` model is built from the size config (registry entry,
  local config.json, or a hub id's config.json; never weights), and its state dict is loaded into the native
  model, so both implementations run identical numbers in the same process.
* Batches: random token ids at full length (no padding), `batch_size x seq_len` tokens per step;
  tokens/s = batch_size * seq_len / median step time.
* Modes: `infer` = forward under `torch.no_grad()` in eval mode; `train` = forward + backward of a
  cross-entropy loss on random labels in train mode (dropout on), gradients dropped (`set_to_none`) after each
  step. No optimizer step (identical for both implementations and not what the issue's targets measure).
* dtypes: `fp32` = plain fp32; `bf16` = fp32 weights under `torch.autocast("cpu", dtype=torch.bfloat16)`.
  A bf16 row whose fp32 twin ran too carries `speed_vs_fp32` (`--impl native --mode train --dtype fp32,bf16
  --seq-len 128` measures what `--precision bf16` would buy a training run).
* Allocator: by default glibc's own behaviour, as transformers runs in any plain process: blocks over 32 MB
  are unmapped on free and page-faulted in again by the next step, which on this project's VMs costs a large
  share of a step (transformers' (B, H, T, T) temporaries at L=512, the 768 MB embedding gradient).
  `keep_memory=True` (`--keep-freed-memory`) times and probes both implementations under
  `xlt.allocator.keep_freed_memory`, the setting `xlt run` trains with; the rows say which was used.
* Fairness on a noisy shared machine: `warmup` untimed steps per implementation, then `repeats` timed steps
  interleaved native/hf (and fp32/bf16 when a mode and length run in both) with the order alternating each
  repeat (ABBA), and the median is reported.
* Peak memory: torch has no CPU allocator statistics, so each (impl, mode, dtype, seq_len) cell runs in a
  fresh `spawn` subprocess that builds only that implementation, records its resident set size (VmRSS), resets
  the kernel's high-water mark (`echo 5 > /proc/self/clear_refs`), runs one step and reads the high-water mark
  (VmHWM). `peak_mem_bytes` is that process-wide peak RSS (weights, gradients, activations, allocator slack
  and the ~0.3-0.5 GB of the Python/torch runtime, the way `/usr/bin/time` reports "max RSS");
  `step_mem_bytes` is the growth over the RSS just before the step. Where clear_refs is not writable the probe
  falls back to `getrusage(RUSAGE_SELF).ru_maxrss`, which also includes model-building transients, and says so
  in `mem_method`.
* MFU: model FLOPs (matmuls only, counted from the config: projections, FFN, QK^T and AV, DeBERTa's c2p/p2c
  against the 2k relative rows and the position projections, nGiE conv, pooler; train = 3x forward) per second,
  divided by a matmul peak measured on the spot (best of several 2048^3 matmuls in that dtype, same threads).
  The count is the full model's for both implementations, so the native classifier, whose last layer
  computes [CLS] only, is credited with work it skips: read its MFU as effective throughput.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import resource
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
import torch.nn.functional as F

from xlt.allocator import keep_freed_memory
from xlt.errors import XltError
from xlt.models.registry import ModelInfo, param_count, resolve_model

IMPLS = ("native", "hf")
MODES = ("infer", "train")
DTYPES = ("fp32", "bf16")
DTYPE_OF = {"fp32": torch.float32, "bf16": torch.bfloat16}
NUM_LABELS = 3


@dataclass
class BenchResult:
    info: ModelInfo
    rows: list[dict]  # one per (impl, mode, dtype, seq_len)
    matmul_peak_flops: dict[str, float]  # dtype -> FLOP/s
    threads: int
    notes: list[str] = field(default_factory=list)

    def ratios(self) -> list[dict]:
        """native/hf tokens-per-second and peak-memory ratios per (mode, dtype, seq_len)."""
        by_cell: dict[tuple, dict] = {}
        for row in self.rows:
            by_cell.setdefault((row["mode"], row["dtype"], row["seq_len"]), {})[row["impl"]] = row
        out = []
        for (mode, dtype, seq_len), impls in by_cell.items():
            if "native" in impls and "hf" in impls:
                n, h = impls["native"], impls["hf"]
                mem = (n["peak_mem_bytes"] / h["peak_mem_bytes"]
                       if n.get("peak_mem_bytes") and h.get("peak_mem_bytes") else None)
                out.append({"mode": mode, "dtype": dtype, "seq_len": seq_len,
                            "speed_ratio": n["tokens_per_s"] / h["tokens_per_s"], "mem_ratio": mem})
        return out

    def precision_ratios(self) -> list[dict]:
        """bf16/fp32 tokens-per-second per (impl, mode, seq_len), from steps timed interleaved in one group."""
        return [{"impl": r["impl"], "mode": r["mode"], "seq_len": r["seq_len"], "dtype": r["dtype"],
                 "speed_vs_fp32": r["speed_vs_fp32"]} for r in self.rows if r.get("speed_vs_fp32")]


# --- model FLOPs --------------------------------------------------------------------------------------------

def _pos_types(config: dict) -> list[str]:
    types = config.get("pos_att_type") or []
    if isinstance(types, str):
        types = [t for t in types.lower().split("|") if t]
    return [t.lower() for t in types]


def forward_flops(config: dict, seq_len: int, batch_size: int) -> float:
    """Matmul FLOPs (2 per multiply-add) of one forward pass over a full (batch_size, seq_len) batch."""
    h, n, i = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    heads = config["num_attention_heads"]
    a = heads * (config.get("attention_head_size") or h // heads)
    L, B = seq_len, batch_size
    per_layer = 2 * L * (4 * h * a) + 2 * L * (2 * h * i) + 2 * (2 * L * L * a)
    once = 0.0  # per batch, not per sequence
    model_type = config.get("model_type", "")
    if model_type.startswith("deberta") and config.get("relative_attention", False):
        types = _pos_types(config)
        max_rel = config.get("max_relative_positions", -1)
        if max_rel is None or max_rel < 1:
            max_rel = config.get("max_position_embeddings", 512)
        buckets = config.get("position_buckets", -1) if model_type == "deberta-v2" else -1
        span = buckets if buckets and buckets > 0 else min(L, max_rel)
        rel_rows = 2 * span
        terms = [t for t in ("c2p", "p2c") if t in types]
        per_layer += len(terms) * 2 * L * rel_rows * a  # Q.Kr^T (c2p), K.Qr^T (p2c)
        once += n * len(terms) * 2 * rel_rows * h * a  # projecting the relative rows
    if config.get("conv_kernel_size", 0):
        once += B * 2 * L * h * h * config["conv_kernel_size"]
    head = 2 * (h * h + h * NUM_LABELS)
    return B * (n * per_layer + head) + once


def step_flops(config: dict, mode: str, seq_len: int, batch_size: int) -> float:
    f = forward_flops(config, seq_len, batch_size)
    return 3 * f if mode == "train" else f


def matmul_peak(dtype: str, n: int = 2048, repeats: int = 5) -> float:
    """Best FLOP/s of an n x n x n matmul in `dtype` on this machine right now."""
    dt = DTYPE_OF[dtype]
    a = torch.randn(n, n).to(dt)
    b = torch.randn(n, n).to(dt)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


# --- building and stepping -----------------------------------------------------------------------------------

def build_pair(config: dict, impls: Iterable[str], seed: int = 0) -> dict[str, torch.nn.Module]:
    """Models for `impls` on identical random weights (transformers' init, loaded into the native model)."""
    from xlt.models.hf import build_from_config
    from xlt.models.verify import native_like

    torch.manual_seed(seed)
    hf = build_from_config(config, NUM_LABELS, "classification")  # forward returns logits, like the native heads
    models = {}
    if "native" in impls:
        models["native"] = native_like(hf.hf, config, NUM_LABELS)
    if "hf" in impls:
        models["hf"] = hf
    return models


def bench_batch(config: dict, batch_size: int, seq_len: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, config["vocab_size"], (batch_size, seq_len), generator=gen)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "labels": torch.randint(0, NUM_LABELS, (batch_size,), generator=gen)}


def run_step(model: torch.nn.Module, batch: dict, mode: str, dtype: str) -> None:
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=(dtype == "bf16"))
    if mode == "infer":
        model.eval()
        with torch.no_grad(), autocast:
            model(batch["input_ids"], batch["attention_mask"])
        return
    model.train()
    with autocast:
        logits = model(batch["input_ids"], batch["attention_mask"])
    loss = F.cross_entropy(logits.float(), batch["labels"])
    loss.backward()
    for p in model.parameters():
        p.grad = None


# --- memory probe (fresh subprocess per cell) ----------------------------------------------------------------

def _status_kb(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _memory_probe(config: dict, impl: str, mode: str, dtype: str, seq_len: int, batch_size: int,
                  threads: int, seed: int, keep_memory: bool = False) -> dict:
    """Runs in a fresh process: build one implementation, one step, return peak RSS in bytes."""
    torch.set_num_threads(threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    if impl == "native":
        from xlt.models.hf import build_from_config
        from xlt.models.verify import native_from_config

        # Same imports and runtime as the hf probe (transformers' model code loaded, built on the meta device
        # so it takes no memory); then the native model with its own init.
        with torch.device("meta"):
            build_from_config(config, NUM_LABELS, "classification")
        torch.manual_seed(seed)
        model = native_from_config(_strip_labels(config), NUM_LABELS)
    else:
        model = build_pair(config, ["hf"], seed)["hf"]
    batch = bench_batch(config, batch_size, seq_len, seed)
    gc.collect()
    base_kb = _status_kb("VmRSS")
    with keep_freed_memory(keep_memory):  # the allocator setting of the timed steps
        if _reset_hwm() and base_kb is not None:
            run_step(model, batch, mode, dtype)
            peak_kb = _status_kb("VmHWM")
            method = "VmHWM after clear_refs, fresh process"
        else:
            base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            run_step(model, batch, mode, dtype)
            peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            method = "ru_maxrss, fresh process (includes build transients)"
    return {"peak_mem_bytes": peak_kb * 1024, "step_mem_bytes": max(0, peak_kb - base_kb) * 1024,
            "mem_method": method}


def measure_memory(config: dict, impl: str, mode: str, dtype: str, seq_len: int, batch_size: int,
                   threads: int, seed: int = 0, keep_memory: bool = False) -> dict:
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(_memory_probe,
                          (config, impl, mode, dtype, seq_len, batch_size, threads, seed, keep_memory))


def _strip_labels(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in ("id2label", "label2id", "num_labels")}


# --- the benchmark -----------------------------------------------------------------------------------------

def parse_cells(spec: str) -> list[tuple[str, str, int]]:
    """'train:fp32:512,infer:bf16:128' -> [(mode, dtype, seq_len), ...]."""
    cells = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        bits = part.split(":")
        if len(bits) != 3 or bits[0] not in MODES or bits[1] not in DTYPES or not bits[2].isdigit():
            raise XltError(f"bad cell '{part}'; write MODE:DTYPE:SEQ_LEN with MODE in {'/'.join(MODES)} and "
                           f"DTYPE in {'/'.join(DTYPES)}, e.g. train:fp32:512.")
        cells.append((bits[0], bits[1], int(bits[2])))
    return cells


def _check(values: Iterable[str], allowed: tuple[str, ...], what: str) -> list[str]:
    values = list(values)
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise XltError(f"unknown {what} {', '.join(bad) or '(none)'}; choose from {', '.join(allowed)}.")
    return values


def _time_cells(models: dict, config: dict, cells: list[tuple[str, str, int]], batch_size: int, repeats: int,
                warmup: int, peak: dict[str, float], seed: int, say: Callable[[str], None]) -> list[dict]:
    """Warm-up, then `repeats` timed steps per (implementation, dtype), interleaved with the order reversed
    every repeat (ABBA): cells that differ only in dtype (train:fp32:128 and train:bf16:128) are timed in one
    interleaved group, so precisions are compared as fairly as implementations. One row per (impl, cell)."""
    groups: dict[tuple[str, int], list[str]] = {}
    for mode, dtype, seq_len in cells:
        groups.setdefault((mode, seq_len), []).append(dtype)
    rows = []
    for (mode, seq_len), dtypes in groups.items():
        batch = bench_batch(config, batch_size, seq_len, seed)
        runs = [(impl, dtype) for dtype in dtypes for impl in models]
        say(f"{mode} {'+'.join(dtypes)} L={seq_len}: {warmup} warm-up + {repeats} timed steps per implementation"
            + (" and dtype" if len(dtypes) > 1 else ""))
        for _ in range(warmup):
            for impl, dtype in runs:
                run_step(models[impl], batch, mode, dtype)
        times: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
        for r in range(repeats):
            for impl, dtype in (runs if r % 2 == 0 else runs[::-1]):
                t0 = time.perf_counter()
                run_step(models[impl], batch, mode, dtype)
                times[impl, dtype].append(time.perf_counter() - t0)
        flops = step_flops(config, mode, seq_len, batch_size)
        for impl, dtype in runs:
            med = statistics.median(times[impl, dtype])
            rows.append({
                "impl": impl, "mode": mode, "dtype": dtype, "seq_len": seq_len, "batch_size": batch_size,
                "tokens_per_s": batch_size * seq_len / med, "step_s_median": med, "step_s": times[impl, dtype],
                "model_flops_per_step": flops, "mfu": flops / med / peak[dtype],
                "peak_mem_bytes": None, "step_mem_bytes": None, "mem_method": None})
    fp32 = {(r["impl"], r["mode"], r["seq_len"]): r["tokens_per_s"] for r in rows if r["dtype"] == "fp32"}
    for row in rows:  # bf16 against fp32 of the same implementation, mode and length, when both ran
        base = fp32.get((row["impl"], row["mode"], row["seq_len"]))
        row["speed_vs_fp32"] = row["tokens_per_s"] / base if base and row["dtype"] != "fp32" else None
    return rows


def run_model_bench(model: str, impls: Iterable[str] = IMPLS, modes: Iterable[str] = MODES,
                    dtypes: Iterable[str] = DTYPES, seq_lens: Iterable[int] = (128, 512), batch_size: int = 8,
                    repeats: int = 3, warmup: int = 1, memory: bool = True,
                    cells: list[tuple[str, str, int]] | None = None, seed: int = 0, keep_memory: bool = False,
                    progress: Callable[[str], None] | None = None) -> BenchResult:
    """Time (and measure the memory of) each requested cell for each implementation; see the module doc."""
    say = progress or (lambda msg: None)
    impls = _check(impls, IMPLS, "implementation")
    if cells is None:
        modes, dtypes = _check(modes, MODES, "mode"), _check(dtypes, DTYPES, "dtype")
        cells = [(m, d, int(L)) for m in modes for d in dtypes for L in seq_lens]
    if repeats < 1 or warmup < 0 or batch_size < 1:
        raise XltError("--repeats must be >= 1, --warmup >= 0 and --batch-size >= 1.")
    info = resolve_model(model)
    config = _strip_labels(info.config)
    notes = []
    if "native" in impls and not info.family.startswith("deberta"):
        impls = [i for i in impls if i != "native"]
        notes.append(f"{info.name} is {info.family}: no native implementation, transformers only.")
        if not impls:
            raise XltError(f"{info.name} has no native implementation; bench it with --impl hf.")
    max_pos = config.get("max_position_embeddings", 512)
    too_long = [c[2] for c in cells if c[2] > max_pos and config.get("position_biased_input", True)]
    if too_long:
        raise XltError(f"seq-len {max(too_long)} exceeds {info.name}'s {max_pos} absolute positions; use <= {max_pos}.")
    threads = torch.get_num_threads()

    say(f"measuring matmul peak ({threads} threads)")
    peak = {d: matmul_peak(d) for d in sorted({c[1] for c in cells})}
    say(f"building {info.name} at its real size ({param_count(config, NUM_LABELS) / 1e6:.0f}M parameters)")
    # Both implementations under the same allocator setting (xlt.allocator; `fit` always trains with it).
    with keep_freed_memory(keep_memory) as kept:
        models = build_pair(config, impls, seed)
        rows = [dict(row, model=info.name, threads=threads, keep_freed_memory=kept)
                for row in _time_cells(models, config, cells, batch_size, repeats, warmup, peak, seed, say)]
        del models
        gc.collect()
    if memory:
        for row in rows:
            say(f"peak memory: {row['impl']} {row['mode']} {row['dtype']} L={row['seq_len']} (fresh process)")
            row.update(measure_memory(config, row["impl"], row["mode"], row["dtype"], row["seq_len"],
                                      batch_size, threads, seed, keep_memory))
    return BenchResult(info=info, rows=rows, matmul_peak_flops=peak, threads=threads, notes=notes)


__all__ = ["BenchResult", "run_model_bench", "parse_cells", "forward_flops", "step_flops", "matmul_peak",
           "build_pair", "run_step", "measure_memory"]
