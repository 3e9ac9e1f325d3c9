"""`xlt bench model` on tiny local configs: behaviour and output shape only, never speed."""

import json

import pytest
import torch
from typer.testing import CliRunner

from tests import factories
from xlt.bench.model import build_pair, forward_flops, parse_cells, step_flops
from xlt.cli import app
from xlt.errors import XltError

runner = CliRunner()
WIDE = {"COLUMNS": "200"}
KEYS = {"impl", "mode", "dtype", "seq_len", "batch_size", "tokens_per_s", "peak_mem_bytes"}


@pytest.fixture(autouse=True)
def small_matmul_peak(monkeypatch):
    """The on-the-spot matmul peak at 2048^3 costs seconds on a busy 2-core box; 256^3 is enough here."""
    import xlt.bench.model as bench

    real = bench.matmul_peak
    monkeypatch.setattr(bench, "matmul_peak", lambda dtype: real(dtype, n=256, repeats=2))


@pytest.fixture()
def config_dir(tmp_path):
    """A directory holding only a config.json (no weights, no tokenizer): enough to benchmark."""
    cfg = dict(factories.DEBERTA_V2)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    return tmp_path


def test_bench_writes_json_rows_for_both_implementations(config_dir, tmp_path):
    out = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", "model", "--model", str(config_dir), "--cells",
                                 "infer:fp32:16,train:bf16:24", "--batch-size", "2", "--repeats", "2",
                                 "--warmup", "0", "--no-memory", "--json", str(out)], env=WIDE)
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert len(rows) == 4
    assert {(r["impl"], r["mode"], r["dtype"], r["seq_len"]) for r in rows} == {
        (i, m, d, L) for i in ("native", "hf") for m, d, L in (("infer", "fp32", 16), ("train", "bf16", 24))}
    for row in rows:
        assert KEYS <= set(row) and row["batch_size"] == 2
        assert row["tokens_per_s"] > 0 and len(row["step_s"]) == 2 and row["mfu"] > 0
        assert row["peak_mem_bytes"] is None  # --no-memory
        assert row["keep_freed_memory"] is False  # glibc's default unless asked
    assert "native / transformers" in result.output and "speed ratio" in result.output


def test_bench_keep_freed_memory_is_recorded(config_dir, tmp_path):
    from xlt.allocator import _glibc

    out = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", "model", "--model", str(config_dir), "--cells", "train:fp32:16",
                                 "--batch-size", "2", "--repeats", "1", "--warmup", "0", "--no-memory",
                                 "--keep-freed-memory", "--json", str(out)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert {r["keep_freed_memory"] for r in json.loads(out.read_text())} == {_glibc() is not None}


def test_memory_probe_runs_in_a_fresh_process(config_dir):
    from xlt.bench.model import measure_memory
    from xlt.models.registry import resolve_model

    config = resolve_model(str(config_dir)).config
    mem = measure_memory(config, "native", "train", "fp32", seq_len=16, batch_size=2, threads=1)
    assert mem["peak_mem_bytes"] > 50 * 2**20  # a Python process with torch loaded
    assert 0 <= mem["step_mem_bytes"] <= mem["peak_mem_bytes"] and mem["mem_method"]


def test_bench_pair_runs_identical_weights(config_dir):
    from xlt.models.registry import resolve_model

    config = resolve_model(str(config_dir)).config
    models = build_pair(config, ["native", "hf"], seed=0)
    ids = torch.randint(5, config["vocab_size"], (2, 20))
    mask = torch.ones_like(ids)
    for m in models.values():
        m.eval()
    with torch.no_grad():
        torch.testing.assert_close(models["native"](ids, mask), models["hf"](ids, mask), atol=1e-5, rtol=1e-4)


def test_bench_transformers_only_for_non_deberta(tiny_xlmr, tmp_path):
    out = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", "model", "--model", str(tiny_xlmr), "--cells", "infer:fp32:16",
                                 "--batch-size", "2", "--repeats", "1", "--warmup", "0", "--no-memory",
                                 "--json", str(out)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert [r["impl"] for r in json.loads(out.read_text())] == ["hf"]


def test_bench_rejects_bad_options(config_dir):
    with pytest.raises(XltError, match="MODE:DTYPE:SEQ_LEN"):
        parse_cells("train:fp16:128")
    result = runner.invoke(app, ["bench", "model", "--model", str(config_dir), "--impl", "native,jax"])
    assert isinstance(result.exception, XltError) and "jax" in str(result.exception)
    result = runner.invoke(app, ["bench", "model", "--model", "mdeberta-v3-bse"])
    assert isinstance(result.exception, XltError) and "mdeberta-v3-base" in str(result.exception)


def test_model_flops_grow_with_length_and_train_is_three_forwards():
    from xlt.models.registry import REGISTRY

    cfg = REGISTRY["mdeberta-v3-base"].config
    f128, f512 = forward_flops(cfg, 128, 8), forward_flops(cfg, 512, 8)
    assert f512 > 4 * f128  # attention is quadratic
    assert step_flops(cfg, "train", 128, 8) == 3 * step_flops(cfg, "infer", 128, 8)
    # ~2 x 86M non-embedding parameters per token, plus attention
    assert 2 * 85e6 * 1024 < f128 < 2 * 110e6 * 1024


def test_bf16_rows_are_timed_beside_fp32_and_carry_the_precision_ratio(config_dir, tmp_path):
    from xlt.bench.model import run_model_bench

    res = run_model_bench(str(config_dir), impls=["native"], cells=parse_cells("train:fp32:16,train:bf16:16"),
                          batch_size=2, repeats=2, warmup=0, memory=False)
    by_dtype = {r["dtype"]: r for r in res.rows}
    assert set(by_dtype) == {"fp32", "bf16"} and by_dtype["fp32"]["speed_vs_fp32"] is None
    ratio = by_dtype["bf16"]["tokens_per_s"] / by_dtype["fp32"]["tokens_per_s"]
    assert by_dtype["bf16"]["speed_vs_fp32"] == pytest.approx(ratio)
    assert res.precision_ratios() == [{"impl": "native", "mode": "train", "seq_len": 16, "dtype": "bf16",
                                       "speed_vs_fp32": pytest.approx(ratio)}]
    assert res.ratios() == []  # one implementation: nothing to compare across implementations


def test_bench_profile_lists_a_steps_ops_with_shares_that_add_up(config_dir, tmp_path):
    """Would catch: shares computed against the wrong total (they must sum to the whole step), matmuls not split
    into dense and attention products, or the JSON losing ops the table cut off."""
    out = tmp_path / "profile.json"
    result = runner.invoke(app, ["bench", "profile", "--model", str(config_dir), "--seq-len", "24", "--batch-size",
                                 "2", "--top", "3", "--json", str(out)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "(all other ops)" in result.output and "s/step under the profiler" in result.output
    rec = json.loads(out.read_text())
    assert rec["impl"] == "native" and rec["mode"] == "train" and rec["keep_freed_memory"] is True
    assert len(rec["ops"]) > 3 and abs(sum(o["share"] for o in rec["ops"]) - 1) < 1e-6
    names = {o["op"] for o in rec["ops"]}
    assert any(n.endswith("(dense)") for n in names) and any(n.endswith("(attention)") for n in names)
    assert [o["self_s"] for o in rec["ops"]] == sorted((o["self_s"] for o in rec["ops"]), reverse=True)
    bad = runner.invoke(app, ["bench", "profile", "--model", str(config_dir), "--dtype", "fp16"])
    assert isinstance(bad.exception, XltError) and "fp32 or bf16" in str(bad.exception)
