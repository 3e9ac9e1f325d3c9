"""One spec builder (issue 22): `xlt run`, `xlt sweep` and the library give the same run id for the same inputs,
whether the task is named or given as a file, and every identity the spec carries is checked by the runner."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from xlt.cli import app
from xlt.recipes import build_spec, normalise_languages
from xlt.schedule import SweepConfig, build_grid
from xlt.tasks import get_task

runner = CliRunner()


def dry_run_id(*args) -> dict:
    result = runner.invoke(app, ["run", *args, "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def sweep_ids(*args) -> list[dict]:
    result = runner.invoke(app, ["sweep", *args, "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def task_file(tmp_path):
    """xnli's task file copied into a folder of its own, under another name."""
    text = get_task("xnli").path.read_text().replace("name: xnli", "name: myxnli") \
        .replace("  hub: facebook/xnli\n", "  hub: facebook/xnli\n  data_dir_name: xnli\n")
    path = tmp_path / "tasks" / "myxnli.yaml"
    path.parent.mkdir()
    path.write_text(text)
    return path


def test_run_sweep_and_the_library_give_one_run_id_for_a_task_by_name_and_by_path(tiny_xlmr, shared_data,
                                                                                  task_file, tmp_path):
    """Would catch: the sweep building specs its own way (another run id for the same experiment, a record filed
    under a folder named after the task file's path)."""
    common = ["--model", str(tiny_xlmr), "--seed", "3", "--data-dir", str(shared_data), "--epochs", "2",
              "--languages", "sw,fr,sw"]
    for task in ("xnli", str(task_file)):
        run = dry_run_id(*common[:2], "--task", task, *common[2:])
        sweep = sweep_ids("--models", str(tiny_xlmr), "--tasks", task, "--seeds", "3", "--data-dir",
                          str(shared_data), "--set", "epochs=2", "--languages", "sw,fr,sw",
                          "--results-dir", str(tmp_path / "r"))
        name = "xnli" if task == "xnli" else "myxnli"
        spec = build_spec(str(tiny_xlmr), get_task(name, [task_file.parent]), 3, overrides={"epochs": 2},
                          data_dir=shared_data, languages=["fr", "sw"])
        assert [s["run_id"] for s in sweep] == [run["run_id"]] == [spec.run_id]
        assert sweep[0]["task"] == name and run["spec"]["task"] == name      # a path is recorded by its name
        assert f"/runs/{name}/" in sweep[0]["record"]
        assert run["spec"]["languages"] == ["en", "fr", "sw"]               # sorted, once, the source added
    grid = build_grid(SweepConfig(models=(str(tiny_xlmr),), tasks=("xnli",), seeds=(3,), overrides={"epochs": 2},
                                  spec_fields={"languages": "fr,sw"}), data_dir=shared_data)
    assert grid[0].run_id == dry_run_id(*common[:2], "--task", "xnli", *common[2:])["run_id"]


def test_languages_are_one_value_whatever_their_order_or_repeats():
    xnli = get_task("xnli")
    assert normalise_languages(xnli, "fr,en") == normalise_languages(xnli, ["en", "en", "fr"]) == ("en", "fr")
    assert normalise_languages(xnli, list(xnli.languages)) is None          # every language: the full run
    for bad, message in (("", "empty language"), ("fr,,de", "empty language"), ("xx", "unknown language")):
        with pytest.raises(Exception, match=message):
            normalise_languages(xnli, bad)


def test_the_identity_follows_the_task_file_and_the_checkpoint(tiny_xlmr, shared_data, task_file, tmp_path):
    """Would catch: a stale record reused after the task file's labels or the checkpoint's weights changed."""
    task = get_task("myxnli", [task_file.parent])
    first = build_spec(str(tiny_xlmr), task, data_dir=shared_data)
    task_file.write_text(task_file.read_text().replace("version: 1", "version: 2"))
    assert build_spec(str(tiny_xlmr), get_task("myxnli", [task_file.parent]), data_dir=shared_data).run_id != \
        first.run_id
    copy = shutil.copytree(tiny_xlmr, tmp_path / "copy")
    assert build_spec(str(copy), task, data_dir=shared_data).model_revision == first.model_revision   # content
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1                                                       # one bit of one weight, in place
    weights.write_bytes(bytes(data))
    assert build_spec(str(copy), task, data_dir=shared_data).model_revision != first.model_revision
