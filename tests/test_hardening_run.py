"""Issue 15 through `xlt run` (and 14.4, `--name`): each bad input gets one clear message, a non-zero exit and
nothing lost. The runs that train use a tiny random DeBERTa-v3 on a few real XNLI rows (a few optimizer steps):
they check plumbing, not accuracy. Each test is named after the defect it would catch."""

import errno
import json
import shlex
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import xlt.results as results
from xlt import runner
from xlt.cli import app
from xlt.results import load_predictions, load_records, read_record
from xlt.spec import RunSpec

ROOT = Path(__file__).resolve().parents[1]
XNLI_REV = "b8dd5d7af51114dbda02c0e3f6133f332186418e"
cli = CliRunner()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Feature cache in the test's folder, no network, one torch thread (the box is shared)."""
    monkeypatch.setenv("XLT_CACHE_DIR", str(tmp_path / "features"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("XLT_DATA_DIR", raising=False)
    monkeypatch.delenv("XLT_RESULTS_DIR", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def xlt(*args):
    return cli.invoke(app, [str(a) for a in args])


def small(model, results_dir, *extra, data_dir=None, task="xnli"):
    """A run of a few steps: 16 (or 32) training pairs, 8 examples per evaluated split and language."""
    data = ["--data-dir", data_dir] if data_dir is not None else []
    return ["run", "--model", model, "--task", task, *data, "--results-dir", results_dir,
            "--max-train-samples", "16", "--max-eval-samples", "8", "--epochs", "1", "--batch-size", "8",
            "--max-seq-len", "32", "--lr", "1e-3", *extra]


def dry_spec(args) -> RunSpec:
    res = xlt(*args, "--dry-run", "--json")
    assert res.exit_code == 0, res.output
    return RunSpec.from_dict(json.loads(res.stdout)["spec"])


def rows(name: str, n: int) -> str:
    lines = (ROOT.parent / "shared" / "data" / "xnli" / name).read_text(encoding="utf-8").splitlines()
    return "\n".join(lines[: n + 1]) + "\n"


def toy_task(folder: Path) -> Path:
    """A task of one's own: its YAML and its files (`files:` source) in one folder, outside xlt."""
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "train-en.tsv").write_text(rows("train-en.tsv", 40))
    for lang in ("en", "fr"):
        for split in ("validation", "test"):
            (folder / "data" / f"{split}-{lang}.tsv").write_text(rows(f"validation-{lang}.tsv", 12))
    path = folder / "toytask.yaml"
    path.write_text("name: toytask\ntype: pair-classification\nversion: 1\n"
                    "labels: [entailment, neutral, contradiction]\nsource_lang: en\nlanguages: [en, fr]\n"
                    "eval_splits: [test, validation]\nmetrics: [accuracy]\n"
                    "source:\n  files: data/{split}-{lang}.tsv\n"
                    "  columns: {text_a: premise, text_b: hypothesis, label: label}\n")
    return path


class _Planted:
    """A pickle that runs code when unpickled: it creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


# --- 15.1, 15.5 (skips, --languages), 15.7 (warmup), 14.4 (--name), 15.10, 15.14: one small run --------------

def test_a_planted_checkpoint_never_runs_and_a_small_run_reports_what_it_skipped(tiny_deberta_v3, shared_data,
                                                                                   tmp_path):
    """Would catch: (15.1) a planted `last.pt` unpickled by a plain `xlt run` or by `--resume` (running its
    code); (15.5) a split with no local file skipped silently or with one line per language, `--languages`
    ignored; (15.7) a warmup longer than the run neither flagged nor warned; (14.4) a local checkpoint shown
    by its full path; (15.10) a name with `[/x]` crashing the output; (15.14) a log showing nothing until the
    end."""
    results_dir = tmp_path / "results"
    args = small(tiny_deberta_v3, results_dir, "--languages", "fr", "--warmup", "1000", "--name", "[/x] tiny",
                 data_dir=shared_data)
    spec = dry_spec(args)
    assert spec.languages == ("en", "fr") and spec.data_revision.startswith("local-sha256:")
    assert dry_spec([*args[:-2], "--name", "other"]).run_id == spec.run_id       # the name is not identity
    ckpt = runner.checkpoint_dir(results_dir, spec)
    ckpt.mkdir(parents=True)
    marker = tmp_path / "pwned"
    torch.save({"result": _Planted(marker)}, ckpt / "last.pt")

    resumed = xlt(*args, "--resume")
    assert resumed.exit_code == 2 and "cannot load the training checkpoint" in resumed.stderr
    assert str(ckpt / "last.pt") in resumed.stderr and "Traceback" not in resumed.output
    assert not marker.exists() and not (results_dir / "runs").exists()

    res = xlt(*args)
    assert res.exit_code == 0, res.output
    assert not marker.exists()
    assert res.stderr.count("cannot load the training checkpoint") == 1 and "starts over" in res.stderr
    skip_lines = [l for l in res.stderr.splitlines() if "not evaluated" in l]
    looked = f"{shared_data}/xnli/test-{{en,fr}}.{{tsv,csv,jsonl,parquet}}"
    assert skip_lines == [f"warning: split test not evaluated for 2 language(s): no file {looked}"]
    assert "warning: warmup of 1000 steps is longer than the whole run (2 steps)" in res.stderr
    assert "train: step 2/2 (100%)" in res.stderr and "eval: done, 2 split/languages" in res.stderr
    assert "[/x] tiny · xnli · seed 1 · completed" in res.stdout
    assert f"not evaluated: split test for 2 language(s) (no file {looked})" in res.stdout

    (path, record), = zip(load_records(results_dir).paths, load_records(results_dir).records)
    assert record["status"] == "completed" and list(record["metrics"]["validation"]) == ["en", "fr"]
    assert record["data"]["skipped"] == {"test": ["en", "fr"]} and record["data"]["looked_for"]["test"] == looked
    assert "split_not_evaluated:test/en,fr" in record["flags"] and "warmup_longer_than_run:1000>2" in record["flags"]
    assert record["model"]["display_name"] == "[/x] tiny" and record["model"]["hub_id"] == str(tiny_deberta_v3)
    assert record["spec"]["model"] == str(tiny_deberta_v3) and record["run_id"] == spec.run_id
    assert not ckpt.exists()
    runs = xlt("report", "runs", "--results-dir", results_dir)
    assert runs.exit_code == 0 and "[/x] tiny" in runs.stdout


def test_default_display_names_are_readable(tmp_path):
    """Would catch: a hub cache snapshot shown (and filed) as its commit hash."""
    from xlt.spec import readable_model_name

    snapshot = tmp_path / "hub" / "models--microsoft--mdeberta-v3-base" / "snapshots" / "3f2a9c0d1e"
    assert readable_model_name(str(snapshot)) == "mdeberta-v3-base"
    assert RunSpec(model=str(snapshot), task="xnli").model_slug == "mdeberta-v3-base"
    assert readable_model_name("/ckpts/my-model/") == "my-model" and readable_model_name("./m") == "m"
    assert readable_model_name("microsoft/mdeberta-v3-base") == "microsoft/mdeberta-v3-base"
    assert readable_model_name("mdeberta-v3-base") == "mdeberta-v3-base"


# --- 15.3 ------------------------------------------------------------------------------------------------------

def test_a_checkpoint_without_tokenizer_files_is_refused(tiny_deberta_v3, shared_data, tmp_path):
    """Would catch: a checkpoint with no tokenizer training on all-[UNK] input and reporting "completed"."""
    bare = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_deberta_v3, bare, ignore=shutil.ignore_patterns("spm.model", "tokenizer*"))
    res = xlt(*small(bare, tmp_path / "results", data_dir=shared_data))
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "has no tokenizer files" in res.stderr and "tokenizer.json, spm.model" in res.stderr
    assert load_records(tmp_path / "results").records == []


# --- 15.5: missing data, data identity -------------------------------------------------------------------------

def test_a_missing_file_of_a_files_source_is_an_error_naming_it(tmp_path):
    """Would catch: a declared data file that is missing being skipped with exit 0."""
    task = toy_task(tmp_path / "t")
    (task.parent / "data" / "test-fr.tsv").unlink()
    res = xlt("run", "--model", "mdeberta-v3-base", "--task", task, "--results-dir", tmp_path / "results")
    assert res.exit_code == 2, res.output
    assert f"expected {task.parent / 'data' / 'test-fr.tsv'}" in res.stderr and "Traceback" not in res.output
    assert not (tmp_path / "results").exists()


def test_the_source_languages_train_and_dev_are_required(tmp_path):
    """Would catch: a run that cannot select its checkpoint (no English dev file) starting anyway."""
    data = tmp_path / "data" / "xnli"
    data.mkdir(parents=True)
    (data / "train-en.tsv").write_text(rows("train-en.tsv", 40))
    (data / "validation-fr.tsv").write_text(rows("validation-fr.tsv", 12))
    res = xlt("run", "--model", "mdeberta-v3-base", "--task", "xnli", "--data-dir", data.parent,
              "--results-dir", tmp_path / "results")
    assert res.exit_code == 2 and f"expected {data / 'validation-en.tsv'}" in res.stderr
    assert not (tmp_path / "results").exists()


def test_hub_data_is_identified_by_the_tasks_pinned_revision():
    """Would catch: a hub run whose spec does not say which revision of the data it reads."""
    spec = dry_spec(["run", "--model", "mdeberta-v3-base", "--task", "xnli"])
    assert spec.data_revision == f"facebook/xnli@{XNLI_REV}"


def test_unknown_languages_are_a_usage_error(shared_data, tmp_path):
    res = xlt("run", "--model", "mdeberta-v3-base", "--task", "xnli", "--data-dir", shared_data,
              "--languages", "fr,xx", "--results-dir", tmp_path)
    assert res.exit_code == 2 and "unknown language(s) xx" in res.stderr


# --- 15.6 + 15.5: a task given by path; the run id follows the data --------------------------------------------

def test_a_task_given_by_path_files_its_record_under_its_name_and_new_data_is_a_new_run(tiny_deberta_v3, tmp_path,
                                                                                      monkeypatch):
    """Would catch: (15.6) `--task /abs/mytask.yaml` failing with NotADirectoryError and `--task ../t/x.yaml`
    writing outside runs/ where `report runs` never looks; (15.5) a rerun on changed local data reported as
    "skipped" with the old numbers."""
    task = toy_task(tmp_path / "t")
    results_dir = tmp_path / "results"
    first = xlt(*small(tiny_deberta_v3, results_dir, task=task.resolve()))
    assert first.exit_code == 0, first.output
    (path, record), = zip(load_records(results_dir).paths, load_records(results_dir).records)
    assert path.parent.parent == results_dir / "runs" / "toytask" and record["spec"]["task"] == "toytask"
    listed = xlt("report", "runs", "--results-dir", results_dir, "--json")
    assert [r["task"] for r in json.loads(listed.stdout)] == ["toytask"]

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    again = xlt(*small(tiny_deberta_v3, results_dir, task="../t/toytask.yaml"))
    assert again.exit_code == 0 and "skipped" in again.stdout    # the same task, the same data: the same run

    validation_fr = task.parent / "data" / "validation-fr.tsv"
    validation_fr.write_text(rows("validation-fr.tsv", 11))
    changed = xlt(*small(tiny_deberta_v3, results_dir, task="../t/toytask.yaml"))
    assert changed.exit_code == 0 and "skipped" not in changed.stdout, changed.output
    loaded = load_records(results_dir)
    assert len(loaded.records) == 2 and len({r["spec"]["data_revision"] for r in loaded.records}) == 2
    assert loaded.records[-1]["metrics"]["validation"]["fr"]["n"] == 8


def test_the_runner_refuses_data_that_changed_after_the_spec_was_made(tiny_deberta_v3, tmp_path):
    """Would catch: a record filed under one data identity holding numbers from other data."""
    from xlt.cli.run import build_run_spec

    task = toy_task(tmp_path / "t")
    spec = build_run_spec(str(tiny_deberta_v3), str(task), 1, data_dir=None, overrides={"epochs": 1}, precision="auto",
                      impl="auto", max_train_samples=8, max_eval_samples=4, tasks_dir=None)[0]
    (task.parent / "data" / "test-en.tsv").write_text(rows("validation-en.tsv", 5))
    outcome = runner.execute(spec, tasks_dir=[task.parent])
    assert outcome.record["status"] == "failed" and "changed since this run's spec" in \
        outcome.record["error"]["message"]


# --- 15.7: hyperparameter ranges through `xlt run` ---------------------------------------------------------------

@pytest.mark.parametrize("extra, names", [
    (["--epochs", "0"], "epochs"), (["--epochs", "-1"], "epochs"), (["--epochs", "1e400"], "epochs"),
    (["--warmup", "-5"], "warmup_steps"), (["--eval-every", "-1"], "eval_every"),
    (["--set", "max_grad_norm=-1"], "max_grad_norm"), (["--seed", "-1"], "seed"),
    (["--max-eval-samples", "0"], "max-eval-samples"), (["--max-eval-samples", "-3"], "max-eval-samples"),
    (["--max-train-samples", "0"], "max-train-samples"),
    (["--set", "epochs=abc", "--epochs", "2"], "epochs='abc'"), (["--set", "lr=nan"], "lr"),
])
def test_out_of_range_hyperparameters_are_refused_before_any_work(shared_data, tmp_path, extra, names):
    """Would catch: epochs 0/-1, negative warmup, eval_every, max_grad_norm or --max-eval-samples accepted,
    `--set epochs=abc` ignored because --epochs is also given, seed -1 or epochs 1e400 crashing."""
    res = xlt("run", "--model", "mdeberta-v3-base", "--task", "xnli", "--data-dir", shared_data,
              "--results-dir", tmp_path / "results", *extra)
    assert res.exit_code == 2, res.output
    assert names in res.stderr and "Traceback" not in res.output
    assert not (tmp_path / "results").exists()


def test_a_flag_takes_precedence_over_set_and_says_so(shared_data):
    res = xlt("run", "--model", "mdeberta-v3-base", "--task", "xnli", "--data-dir", shared_data, "--set",
              "epochs=3", "--epochs", "2", "--set", "lr=1e-5", "--dry-run", "--json")
    assert res.exit_code == 0, res.output
    hp = json.loads(res.stdout)["spec"]["hparams"]
    assert hp["epochs"] == 2 and hp["lr"] == 1e-5
    assert "--epochs 2.0 takes precedence over --set epochs=3.0" in res.stderr


# --- 15.11: results folder ------------------------------------------------------------------------------------------

def test_an_unwritable_results_folder_is_refused_before_any_work(shared_data, tmp_path):
    """Would catch: an unwritable results dir found only after training, with a raw OSError traceback."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    res = xlt("run", "--model", tmp_path / "no-such-model", "--task", "xnli", "--data-dir", shared_data,
              "--results-dir", blocker / "results")
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert f"cannot write run records to the results folder {blocker / 'results'}" in res.stderr
    assert "is a file, not a folder" in res.stderr


def test_a_full_disk_at_the_end_keeps_the_record_and_predictions_and_says_where(tiny_deberta_v3, shared_data,
                                                                               tmp_path, monkeypatch):
    """Would catch: a run's results lost (or a traceback) when the record cannot be written at the end."""
    real = results._atomic_write

    def full_disk(path, data):
        if "results" in path.parts:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(results, "_atomic_write", full_disk)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    res = xlt(*small(tiny_deberta_v3, tmp_path / "results", "--languages", "fr", data_dir=shared_data))
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "No space left on device" in res.stderr and "kept in" in res.stderr
    kept, = (tmp_path / "tmp").glob("xlt-unsaved-*")
    assert str(kept) in res.stderr.replace("\n", "")
    record = read_record(next(kept.glob("*.json")))
    assert record["status"] == "completed"
    data = next(kept.glob("*.predictions.parquet")).read_bytes()
    assert results.predictions_info(data) == record["predictions"]
    assert len(pd.read_parquet(next(kept.glob("*.predictions.parquet")))) == record["predictions"]["rows"]


# --- 15.13: Ctrl-C --------------------------------------------------------------------------------------------------

def test_ctrl_c_keeps_the_checkpoint_and_prints_the_resume_command(tiny_deberta_v3, shared_data, tmp_path,
                                                                   monkeypatch):
    """Would catch: Ctrl-C exiting 130 silently, without saying that the checkpoint is kept and how to resume."""
    real_run = runner.run

    def interrupted_run(*args, **kwargs):
        def stop(step):
            if step == 2:
                raise KeyboardInterrupt
        return real_run(*args, **kwargs, on_step=stop)

    results_dir = tmp_path / "results"
    args = small(tiny_deberta_v3, results_dir, "--languages", "fr", "--max-train-samples", "32",
                 "--checkpoint-every", "1", "--set", "weight_decay=0", data_dir=shared_data)
    monkeypatch.setattr(runner, "run", interrupted_run)
    res = xlt(*args)
    monkeypatch.undo()
    assert res.exit_code == 130 and "Traceback" not in res.output
    assert "the checkpoint of run" in res.stderr and "at step 2 is kept in" in res.stderr
    command = res.stderr.split("continue with:")[1].strip()
    assert command.startswith("xlt run ") and command.endswith("--resume") and "weight_decay=0" in command
    assert not (results_dir / "runs").exists()

    resumed = xlt(*shlex.split(command)[1:])
    assert resumed.exit_code == 0, resumed.output
    record = load_records(results_dir).records[0]
    assert "resumed_from_step:2" in record["flags"] and record["selection"]["total_steps"] == 4
    assert load_predictions(load_records(results_dir).paths[0]) is not None


@pytest.mark.slow
def test_a_real_sigint_exits_130_with_the_resume_command(tiny_deberta_v3, shared_data, tmp_path):
    """Would catch: Ctrl-C (a real SIGINT to the `xlt` process) ending in click's "Aborted!", a traceback or
    a silent 130, instead of the kept checkpoint and the command that resumes from it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    results_dir = tmp_path / "results"
    args = small(tiny_deberta_v3, results_dir, "--languages", "fr", "--max-train-samples", "1000",
                 "--checkpoint-every", "1", "--quiet", data_dir=shared_data)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", "from xlt.cli import main; main()", *map(str, args)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoints = results_dir / "checkpoints"
    deadline = time.monotonic() + 600
    while not list(checkpoints.rglob("last.pt")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and "Aborted" not in err
    assert "is kept in" in err and err.strip().endswith("--resume")
    assert not (results_dir / "runs").exists() and list(checkpoints.rglob("last.pt"))
