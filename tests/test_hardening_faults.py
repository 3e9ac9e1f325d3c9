"""Issue 26.8, faults with names: a full disk while checkpointing is a warning naming the folder and the bytes
needed, and training goes on; `--resume` loads every checkpoint file before any work (a poisoned `best.pt` is
found before the model is loaded); a config.json whose shapes disagree with its weights' headers is refused
before anything is allocated. The runs are a tiny random DeBERTa-v3 on a few real XNLI rows. Each test is named
after the case it guards."""

import errno
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import xlt.checkpoint_files as checkpoint_files
from tests.test_hardening_run import _Planted, dry_spec, small, xlt
from xlt import runner
from xlt.results import load_records

pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


# What torch.save raised on a real full disk (a 1 MB tmpfs, torch 2.13): its zip writer's RuntimeError, not an
# OSError. Older torch versions raise OSError(ENOSPC) from the file write; both are simulated.
TORCH_FULL_DISK = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 166592 vs 166480")


def full_disk(monkeypatch, names=("last.pt", "best.pt"), error=TORCH_FULL_DISK):
    """torch.save into a checkpoint file fails as a full disk fails: part of the file written, then `error`."""
    real = torch.save

    def save(obj, path, *args, **kwargs):
        if any(f".{name}." in Path(path).name for name in names):
            Path(path).write_bytes(b"PK\x03\x04 half a checkpoint")
            raise error
        return real(obj, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint_files.torch, "save", save)


@pytest.mark.parametrize("error, why", [(TORCH_FULL_DISK, "unexpected pos 166592 vs 166480)"),
                                        (OSError(errno.ENOSPC, "No space left on device"),
                                         "(No space left on device)")], ids=["torch", "oserror"])
def test_a_full_disk_while_checkpointing_names_the_folder_and_the_bytes_and_training_goes_on(
        tiny_deberta_v3, shared_data, tmp_path, monkeypatch, error, why):
    """Would catch: torch's internal message ("[enforce fail at inline_container.cc:672] . unexpected pos")
    ending a run whose training checkpoint, optional to it, could not be written."""
    results_dir = tmp_path / "results"
    args = small(tiny_deberta_v3, results_dir, "--languages", "fr", "--max-train-samples", "32",
                 "--checkpoint-every", "1", data_dir=shared_data)
    folder = runner.checkpoint_dir(results_dir, dry_spec(args))
    full_disk(monkeypatch, error=error)
    res = xlt(*args)
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    text = " ".join(res.stderr.split())
    for name in ("best.pt", "last.pt"):
        assert text.count(f"could not write the training checkpoint {name} into {folder}") == 1, text
    assert why in text and "): it needs about" in text and " MB free there; training goes on" in text
    record = load_records(results_dir).records[0]
    assert record["status"] == "completed"
    assert {"checkpoint_not_written:last.pt@1", "checkpoint_not_written:best.pt@4"} <= set(record["flags"])
    assert not list((results_dir / "checkpoints").rglob("*.tmp"))   # no half-written file left behind


def test_last_pt_is_never_written_while_best_pt_lacks_the_weights_it_selects(tiny_deberta_v3, shared_data,
                                                                               tmp_path, monkeypatch):
    """Would catch: a last.pt saying "step 2 selected" beside a best.pt that could not be written, so a
    --resume would finish with the last weights instead of the selected ones."""
    results_dir = tmp_path / "results"
    args = small(tiny_deberta_v3, results_dir, "--languages", "fr", "--max-train-samples", "32",
                 "--checkpoint-every", "1", "--eval-every", "1", data_dir=shared_data)
    spec = dry_spec(args)
    full_disk(monkeypatch, names=("best.pt",))

    def stop(step):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.run(spec, data_dir=shared_data, results_dir=results_dir, checkpoint_every=1, on_step=stop)
    folder = runner.checkpoint_dir(results_dir, spec)
    assert not (folder / "best.pt").exists() and not (folder / "last.pt").exists()


def interrupted_run(tiny, shared_data, results_dir):
    """A run killed after step 2 of 4: its checkpoint folder holds last.pt and best.pt."""
    args = small(tiny, results_dir, "--languages", "fr", "--max-train-samples", "32", "--checkpoint-every", "1",
                 "--eval-every", "2", data_dir=shared_data)
    spec = dry_spec(args)

    def stop(step):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.run(spec, data_dir=shared_data, results_dir=results_dir, checkpoint_every=1, on_step=stop)
    folder = runner.checkpoint_dir(results_dir, spec)
    assert (folder / "last.pt").exists() and (folder / "best.pt").exists()
    return args, spec, folder


@pytest.mark.parametrize("damage", ["poisoned", "missing", "not_weights"])
def test_resume_checks_every_checkpoint_file_before_any_work(tiny_deberta_v3, shared_data, tmp_path, damage):
    """Would catch: a poisoned (pickled code), missing or foreign best.pt found only after the model was loaded
    and the data featurised (a failed run), or a resume that silently ends with the last weights."""
    args, spec, folder = interrupted_run(tiny_deberta_v3, shared_data, tmp_path / "results")
    marker = tmp_path / "pwned"
    if damage == "poisoned":
        torch.save({"classifier.weight": _Planted(marker)}, folder / "best.pt")
    elif damage == "missing":
        (folder / "best.pt").unlink()
    else:
        torch.save({"step": 3}, folder / "best.pt")
    res = xlt(*args, "--resume")
    text = " ".join(res.stderr.split())
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert str(folder / "best.pt") in text and not marker.exists()
    assert f"run {spec.run_id}:" not in text and "train:" not in text     # refused before any work
    assert not (tmp_path / "results" / "runs").exists()


def run_capped(*args, cwd: Path) -> subprocess.CompletedProcess:
    """The real `xlt` with its address space capped at 8 GB: were the 12.8 GB embedding of a 10^8 vocabulary
    ever allocated again, the run fails here at once instead of eating a shared machine's memory."""
    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "XLT_CACHE_DIR": str(cwd / "features")}
    return subprocess.run([str(Path(sys.executable).with_name("xlt")), *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=600, preexec_fn=cap)


@pytest.mark.parametrize("impl, weights", [("native", "safetensors"), ("native", "bin"), ("hf", "safetensors")])
def test_a_config_whose_shapes_disagree_with_the_weights_is_refused_before_anything_is_allocated(
        tmp_path, spm_model, shared_data, impl, weights):
    """Would catch: a config.json claiming a 10^8-piece vocabulary making xlt build (and initialise) a 12.8 GB
    embedding before reading the weights that say 1,000 (native), or transformers re-initialising it as a
    "mismatched" tensor (--impl hf)."""
    from tests import factories

    ckpt = factories.tiny_checkpoint(tmp_path / "ckpt", factories.DEBERTA_V3, spm_model)
    if weights == "bin":   # transformers 5 saves safetensors only: the same tensors as an older .bin checkpoint
        from safetensors.torch import load_file

        torch.save(load_file(ckpt / "model.safetensors"), ckpt / "pytorch_model.bin")
        (ckpt / "model.safetensors").unlink()
    config = json.loads((ckpt / "config.json").read_text())
    config["vocab_size"] = 10**8
    (ckpt / "config.json").write_text(json.dumps(config))
    res = run_capped("run", "--model", ckpt, "--task", "xnli", "--data-dir", shared_data, "--impl", impl,
                     "--results-dir", tmp_path / "results", "--max-train-samples", "8", cwd=tmp_path)
    text = " ".join((res.stdout + res.stderr).split())
    assert res.returncode == 1 and "Traceback" not in text, text
    file = "model.safetensors" if weights == "safetensors" else "pytorch_model.bin"
    assert (f"the config.json of {ckpt} disagrees with its weights: embeddings.word_embeddings.weight is "
            f"(1000, 32) in {file} but config.json builds (100000000, 32); nothing was allocated") in text
