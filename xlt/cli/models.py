"""`xlt models list`, `xlt models verify` and `xlt bench model`: parse, call one library function, render."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from xlt.cli.common import JsonFlag, JsonOpt, bench_app, console, err_console, models_app, print_json, print_wide


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _gb(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**30:.2f} GB"


@models_app.command("list")
def list_models(as_json: JsonFlag = False) -> None:
    """Registry models: hub id, family, implementation, parameters and shape (no download)."""
    from xlt.models.registry import REGISTRY, param_count

    rows = [{"name": info.name, "hub_id": info.hub_id, "family": info.family, "impl": info.impl,
             "params": param_count(info.config), "hidden_size": info.config["hidden_size"],
             "num_layers": info.config["num_hidden_layers"], "vocab_size": info.config["vocab_size"]}
            for info in REGISTRY.values()]
    if as_json:
        print_json(rows)
        return
    table = Table(title="xlt model registry")
    for col, justify in [("name", "left"), ("hub id", "left"), ("family", "left"), ("impl", "left"),
                         ("params", "right"), ("hidden x layers", "right"), ("vocab", "right")]:
        table.add_column(col, justify=justify, no_wrap=col in ("name", "hub id"))
    for r in rows:
        table.add_row(r["name"], r["hub_id"], r["family"], r["impl"], f"{r['params'] / 1e6:.0f}M",
                      f"{r['hidden_size']} x {r['num_layers']}", f"{r['vocab_size']:,}")
    print_wide([table])
    console.print("params: encoder incl. embeddings, without a task head. Any other hub id or a local "
                  "checkpoint directory works too.", style="dim")


@models_app.command("verify")
def verify_model(
    model: Annotated[str, typer.Argument(help="Registry name, hub id or local checkpoint directory.")],
    seq_len: Annotated[int, typer.Option("--seq-len", min=2, max=1 << 16,
                                         help="Longest sequence of the random batch.")] = 128,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=1 << 12,
                                            help="Sequences (mixed lengths, padded).")] = 4,
    num_labels: Annotated[int, typer.Option("--num-labels", min=1, max=1 << 16, help="Classifier size.")] = 3,
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1)] = 0,
) -> None:
    """Native DeBERTa vs transformers on the same weights and padded batch; exit 1 if a diff > 1e-4."""
    from xlt.models.verify import verify

    res = verify(model, seq_len=seq_len, batch_size=batch_size, num_labels=num_labels, seed=seed)
    console.print(f"{res.info.name} ({res.info.family}); {res.native_report}", highlight=False, markup=False)
    if res.copied_head:
        console.print(f"checkpoint has no classifier for {num_labels} labels: copied the native head into "
                      f"transformers' model ({', '.join(res.copied_head)})", highlight=False, markup=False)
    console.print(f"batch {res.batch_size} x {res.seq_len}, lengths {res.lengths}", highlight=False)
    table = Table(title="native vs transformers (fp32, max |diff|, non-padded positions)")
    table.add_column("output")
    table.add_column("max abs diff", justify="right")
    table.add_column("ok", justify="center")
    for label, diff in (("hidden states", res.encoder_max_abs_diff), ("logits", res.logits_max_abs_diff)):
        table.add_row(label, f"{diff:.3e}", "yes" if diff <= res.tolerance else "[red]NO[/]")
    console.print(table)
    if not res.ok:
        err_console.print(f"[bold red]verify failed:[/] a difference exceeds {res.tolerance:g}; the native "
                          "implementation does not reproduce transformers on this checkpoint.")
        raise typer.Exit(1)
    console.print(f"encoder max abs diff {res.encoder_max_abs_diff:.3e}, logits max abs diff "
                  f"{res.logits_max_abs_diff:.3e}: within {res.tolerance:g}", highlight=False)


@bench_app.command("model")
def bench_model(
    model: Annotated[str, typer.Option("--model", help="Registry name, hub id or local checkpoint directory.")],
    impl: Annotated[str, typer.Option("--impl", help="Comma-separated: native,hf.")] = "native,hf",
    mode: Annotated[str, typer.Option("--mode", help="Comma-separated: infer,train.")] = "infer,train",
    dtype: Annotated[str, typer.Option("--dtype", help="Comma-separated: fp32,bf16 (bf16 = autocast).")]
    = "fp32,bf16",
    seq_len: Annotated[str, typer.Option("--seq-len", help="Comma-separated sequence lengths.")] = "128,512",
    batch_size: Annotated[int, typer.Option("--batch-size")] = 8,
    repeats: Annotated[int, typer.Option("--repeats", help="Timed steps per implementation and cell.")] = 3,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed steps per implementation and cell.")] = 1,
    cells: Annotated[Optional[str], typer.Option(
        "--cells", help="Exact cells instead of the mode x dtype x seq-len grid, e.g. "
                        "train:fp32:512,train:fp32:128,infer:bf16:128.")] = None,
    memory: Annotated[bool, typer.Option("--memory/--no-memory",
                                         help="Measure peak RSS per cell in a fresh subprocess.")] = True,
    keep_memory: Annotated[bool, typer.Option(
        "--keep-freed-memory/--release-freed-memory",
        help="Run every step with freed memory kept in the process for reuse, as `xlt run` trains "
             "(xlt/allocator.py); the default is glibc's plain behaviour, as transformers runs elsewhere.")] = False,
    json_path: JsonOpt = None,
) -> None:
    """Tokens/s, peak memory and MFU of native DeBERTa vs transformers at NAME's real size (random weights)."""
    from xlt.bench.model import parse_cells, run_model_bench
    from xlt.errors import XltError

    try:
        lens = [int(v) for v in _csv(seq_len)]
    except ValueError:
        raise XltError(f"--seq-len takes comma-separated integers, got '{seq_len}'.") from None
    res = run_model_bench(model, impls=_csv(impl), modes=_csv(mode), dtypes=_csv(dtype), seq_lens=lens,
                          batch_size=batch_size, repeats=repeats, warmup=warmup, memory=memory,
                          keep_memory=keep_memory,
                          cells=parse_cells(cells) if cells else None,
                          progress=lambda msg: err_console.print(msg, style="dim", highlight=False, markup=False))
    for note in res.notes:
        err_console.print(note, markup=False)
    peaks = ", ".join(f"{d} {f / 1e9:.0f} GFLOP/s" for d, f in res.matmul_peak_flops.items())
    table = Table(title=escape(f"{res.info.name}: batch {batch_size}, {res.threads} threads, matmul peak {peaks}"))
    for col in ("mode", "dtype", "L", "impl", "tokens/s", "step s (median)", "peak mem", "MFU"):
        table.add_column(col, justify="left" if col in ("mode", "dtype", "impl") else "right")
    for r in res.rows:
        table.add_row(r["mode"], r["dtype"], str(r["seq_len"]), r["impl"], f"{r['tokens_per_s']:.0f}",
                      f"{r['step_s_median']:.3f}", _gb(r["peak_mem_bytes"]), f"{100 * r['mfu']:.1f}%")
    console.print(table)
    ratios = res.ratios()
    if ratios:
        rt = Table(title="native / transformers")
        for col in ("mode", "dtype", "L", "speed ratio", "peak-memory ratio"):
            rt.add_column(col, justify="left" if col in ("mode", "dtype") else "right")
        for r in ratios:
            rt.add_row(r["mode"], r["dtype"], str(r["seq_len"]), f"{r['speed_ratio']:.2f}x",
                       "-" if r["mem_ratio"] is None else f"{r['mem_ratio']:.2f}x")
        console.print(rt)
    if json_path is not None:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(res.rows, indent=2))
        console.print(f"wrote {json_path}", highlight=False, markup=False)


@bench_app.command("profile")
def bench_profile(
    model: Annotated[str, typer.Option("--model", help="Registry name, hub id or local checkpoint directory.")],
    seq_len: Annotated[int, typer.Option("--seq-len")] = 512,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 8,
    impl: Annotated[str, typer.Option("--impl", help="native or hf.")] = "native",
    dtype: Annotated[str, typer.Option("--dtype", help="fp32 or bf16 (autocast).")] = "fp32",
    mode: Annotated[str, typer.Option("--mode", help="train or infer.")] = "train",
    steps: Annotated[int, typer.Option("--steps", help="Profiled steps (after --warmup untimed ones).")] = 1,
    warmup: Annotated[int, typer.Option("--warmup")] = 1,
    top: Annotated[int, typer.Option("--top", help="Ops listed; the rest are summed in one row.")] = 20,
    keep_memory: Annotated[bool, typer.Option(
        "--keep-freed-memory/--release-freed-memory",
        help="The allocator setting `xlt run` trains with (default), or glibc's plain behaviour.")] = True,
    json_path: JsonOpt = None,
) -> None:
    """Where a step's time goes: torch.profiler's top ops by self CPU time, matmuls split dense/attention."""
    from xlt.bench.profile import profile_step
    from xlt.errors import XltError

    if dtype not in ("fp32", "bf16") or mode not in ("train", "infer") or steps < 1 or warmup < 0:
        raise XltError("--dtype takes fp32 or bf16, --mode train or infer, --steps >= 1 and --warmup >= 0.")
    err_console.print(f"profiling {steps} {impl} {mode} step(s) of {model} at L={seq_len}, batch {batch_size}",
                      style="dim", highlight=False, markup=False)
    ops, wall = profile_step(model, seq_len, batch_size, impl, dtype, mode, steps, warmup, keep_memory=keep_memory)
    import torch

    # The model path and the step time go in one soft-wrapped line, not the title (a long path wrapped the title
    # mid-phrase in a narrow terminal), and the op column never wraps.
    table = Table(title=f"{impl} {mode} {dtype} L={seq_len} batch {batch_size}")
    for col in ("op", "self s/step", "share", "calls/step"):
        table.add_column(col, justify="left" if col == "op" else "right", no_wrap=True)
    for o in ops[:top]:
        table.add_row(escape(o.name), f"{o.self_s:.3f}", f"{100 * o.share:.1f}%", str(o.calls))
    rest = ops[top:]
    table.add_row("(all other ops)", f"{sum(o.self_s for o in rest):.3f}", f"{100 * sum(o.share for o in rest):.1f}%",
                  "")
    console.print(table)
    console.print(f"{model}, {torch.get_num_threads()} threads: {wall:.2f} s/step under the profiler",
                  highlight=False, markup=False, soft_wrap=True)
    if json_path is not None:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps({
            "model": model, "impl": impl, "mode": mode, "dtype": dtype, "seq_len": seq_len, "batch_size": batch_size,
            "threads": torch.get_num_threads(), "keep_freed_memory": keep_memory, "step_s": wall,
            "ops": [{"op": o.name, "self_s": o.self_s, "share": o.share, "calls": o.calls} for o in ops]}, indent=2))
        console.print(f"wrote {json_path}", highlight=False, markup=False)
