"""Issue 26.1, never run checkpoint code: a checkpoint whose config.json points `auto_map` at a Python file in
the checkpoint is refused, whatever arrives on stdin; the file never runs. The run goes through the real `xlt`
command with `y` piped in, as a user (or a script) would. (A tokenizer_config.json `auto_map` beside a config
transformers knows does not prompt in transformers 5: it falls back to the known class; xlt passes
trust_remote_code=False there too.)"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

XLT = Path(sys.executable).with_name("xlt")
EVIL = """import pathlib
pathlib.Path({marker!r}).write_text("this code ran")
from transformers import PretrainedConfig


class EvilConfig(PretrainedConfig):
    model_type = "evilnet"
"""


def evil_checkpoint(tiny: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A real tiny checkpoint whose config.json names an architecture only its own evil.py defines; evil.py
    creates the returned marker file if it ever runs."""
    ckpt, marker = tmp_path / "evil-checkpoint", tmp_path / "pwned"
    shutil.copytree(tiny, ckpt)
    config = json.loads((ckpt / "config.json").read_text())
    config.update(model_type="evilnet", auto_map={"AutoConfig": "evil.EvilConfig",
                                                  "AutoModelForSequenceClassification": "evil.EvilConfig"})
    (ckpt / "config.json").write_text(json.dumps(config))
    (ckpt / "evil.py").write_text(EVIL.format(marker=str(marker)))
    return ckpt, marker


def xlt_with_yes(*args, cwd: Path) -> subprocess.CompletedProcess:
    """`echo y | xlt ...` with the hub offline: a prompt, if any, would read the `y`."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "XLT_CACHE_DIR": str(cwd / "features")}
    for name in ("XLT_DATA_DIR", "XLT_TASKS_PATH", "XLT_RESULTS_DIR"):
        env.pop(name, None)
    return subprocess.run([str(XLT), *map(str, args)], input="y\n" * 8, capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def test_a_checkpoint_that_ships_its_own_model_code_is_refused_and_never_run(tiny_deberta_v3, shared_data,
                                                                               tmp_path):
    """Would catch: transformers asking "Do you wish to run the custom code? [y/N]" on stdin and running
    evil.py when a `y` arrives (xlt passed no trust_remote_code=False)."""
    ckpt, marker = evil_checkpoint(tiny_deberta_v3, tmp_path)
    res = xlt_with_yes("run", "--model", ckpt, "--task", "xnli", "--data-dir", shared_data, "--results-dir",
                       tmp_path / "results", "--max-train-samples", "8", "--max-eval-samples", "4", cwd=tmp_path)
    text = " ".join((res.stdout + res.stderr).split())
    assert res.returncode != 0 and not marker.exists(), text
    assert "Traceback" not in text and "Do you wish to run" not in text
    assert f"checkpoint {ckpt} needs Python code it ships itself (auto_map in config.json: evil.EvilConfig)" in text
    assert "xlt never runs code from a checkpoint" in text
    assert not (tmp_path / "results" / "runs").exists()



def test_the_transformers_loader_itself_never_runs_checkpoint_code(tiny_deberta_v3, tmp_path):
    """Would catch: `load_hf` (the transformers path, also behind `models verify` and the benches) relying on
    the registry's check alone: given a hub id whose repository ships its own code (here from the local hub
    cache, offline), transformers asked on stdin and ran evil.py on `y`."""
    ckpt, marker = evil_checkpoint(tiny_deberta_v3, tmp_path)
    repo = tmp_path / "hub" / "models--someone--evilnet"
    sha = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(sha)
    shutil.copytree(ckpt, repo / "snapshots" / sha)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    code = ("from xlt.errors import XltError\nfrom xlt.models.hf import load_hf\n"
            "try:\n    load_hf('someone/evilnet', 'classification', 3)\nexcept XltError as exc:\n    print('refused:', exc)\n")
    res = subprocess.run([sys.executable, "-c", code], input="y\n" * 8, capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=300)
    assert not marker.exists(), res.stdout + res.stderr
    assert res.returncode == 0 and "refused: transformers cannot build 'someone/evilnet'" in res.stdout, \
        res.stdout + res.stderr[-2000:]
