"""Task files, the registry and reading splits (local files only: tests never touch the network)."""

from pathlib import Path

import pytest

import xlt.hub
from xlt.errors import XltError
from xlt.paths import builtin_tasks_dir
from xlt.tasks import (TaskFileError, TaskSpec, available_splits, check_task_file, get_task,
                       list_tasks, load_split, task_files)

BUILTIN = ("xnli", "pawsx", "americasnli", "indicxnli")

MY_TASK = """\
name: mytask
type: pair-classification
version: 1
description: A toy NLI task in two languages.
labels: [entailment, neutral, contradiction]
source_lang: en
languages: [en, xx]
eval_splits: [test]
metrics: [accuracy, macro_f1]
source:
  files: data/{split}-{lang}.tsv
  columns: {text_a: p, text_b: h, label: gold}
  label_map: {entailment: entailment, neutral: neutral, contradictory: contradiction}
"""


def write_task(dirpath: Path, text: str = MY_TASK, name: str = "mytask") -> Path:
    dirpath.mkdir(parents=True, exist_ok=True)
    path = dirpath / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def write_rows(path: Path, rows, header="p\th\tgold") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")


def test_every_builtin_task_file_validates():
    files = task_files()
    assert {f.stem for f in files} >= set(BUILTIN)
    for f in files:
        spec, problems = check_task_file(f)
        assert problems == [], problems
        assert spec.name == f.stem and spec.source_lang in spec.languages
        for src in spec.sources:
            assert src.hub is None or "/" in src.hub     # namespaced hub ids
            assert src.hub is None or src.revision       # every hub source names a revision


def test_builtin_specs():
    xnli = get_task("xnli")
    assert xnli.languages == ("en", "fr", "es", "de", "el", "bg", "ru", "tr", "ar", "vi", "th", "zh", "hi", "sw", "ur")
    assert xnli.label_names == ("entailment", "neutral", "contradiction")
    assert xnli.type == "pair-classification" and xnli.dev_split == "validation" and xnli.train_split == "train"
    assert xnli.primary_metric in xnli.metrics and xnli.sources[-1].revision
    assert get_task("pawsx").languages == ("en", "de", "es", "fr", "ja", "ko", "zh")
    anli = get_task("americasnli")
    assert anli.source_for("train", "en").hub == "facebook/xnli"          # zero-shot from English MultiNLI
    assert anli.source_for("test", "quy").hub == "nala-cub/americas_nli"
    assert get_task("indicxnli").source_for("test", "ta").hub == "Divyanshu/indicxnli"
    with pytest.raises(Exception):
        xnli.name = "other"   # frozen


def test_builtin_tasks_found_from_package_data_path():
    # xlt/_data/tasks is what a wheel ships; in a checkout it links to tasks/.
    d = builtin_tasks_dir()
    assert d is not None and (d / "xnli.yaml").is_file()


def test_xnli_local_validation_counts(shared_data):
    task = get_task("xnli")
    for lang in task.languages:
        split = load_split(task, "validation", lang, data_dir=shared_data)
        assert len(split) == 2490
        assert split.frame["label"].value_counts().to_dict() == {0: 830, 1: 830, 2: 830}
        assert list(split.frame.columns) == ["text_a", "text_b", "label"]
        assert split.revision is None and split.origin.endswith(f"validation-{lang}.tsv")


def test_xnli_tsv_read_exactly(shared_data):
    # Unquoted TSV with `"` inside fields, and words like NA/null must stay text: compare with a plain split.
    task = get_task("xnli")
    for lang in ("en", "fr", "de", "ar"):
        lines = (shared_data / "xnli" / f"validation-{lang}.tsv").read_text(encoding="utf-8").splitlines()[1:]
        frame = load_split(task, "validation", lang, data_dir=shared_data).frame
        assert frame["text_a"].tolist() == [l.split("\t")[1] for l in lines]
        assert frame["text_b"].tolist() == [l.split("\t")[2] for l in lines]


def test_xnli_train_sample_and_pawsx(shared_data):
    train = load_split("xnli", "train", "en", data_dir=shared_data)
    assert len(train) == 15001
    assert train.frame["label"].value_counts().to_dict() == {2: 5504, 0: 5100, 1: 4397}
    pawsx = get_task("pawsx")
    # label counts of ../shared/data/pawsx (pinned by its SHA256SUMS): 0 = not paraphrase, 1 = paraphrase
    expected = {"en": 863, "de": 831, "es": 847, "fr": 860, "ja": 854, "ko": 840, "zh": 853}
    for lang in pawsx.languages:
        split = load_split(pawsx, "validation", lang, data_dir=shared_data)
        counts = split.frame["label"].value_counts().to_dict()
        assert len(split) == 2000 and counts == {0: 2000 - expected[lang], 1: expected[lang]}, (lang, counts)
        assert split.dropped == 0


def test_data_dir_from_env(shared_data, monkeypatch):
    monkeypatch.setenv("XLT_DATA_DIR", str(shared_data))
    assert len(load_split("xnli", "validation", "sw")) == 2490


def test_available_splits_with_shared_data(shared_data):
    # ../shared/data has validation files but no test split: the runner evaluates what is present.
    avail = available_splits("xnli", shared_data)
    assert avail["test"] == () and len(avail["validation"]) == 15
    assert available_splits("xnli", shared_data, splits=["train"])["train"] == ("en",)
    # from the hub every declared split is available
    assert available_splits("xnli")["test"] == get_task("xnli").languages


def test_americasnli_trains_from_xnli_folder_locally(shared_data):
    task = get_task("americasnli")
    assert len(load_split(task, "train", "en", data_dir=shared_data)) == 15001
    with pytest.raises(XltError, match=r"americasnli/validation-aym\.tsv"):
        load_split(task, "validation", "aym", data_dir=shared_data)


# -- bad input: each one clear XltError --------------------------------------------------------------

def test_unknown_task_lists_valid_ones():
    with pytest.raises(XltError, match=r"unknown task 'xnlj'.*xnli.*pawsx"):
        get_task("xnlj")


def test_unknown_language_and_split_list_valid_ones(shared_data):
    with pytest.raises(XltError, match=r"unknown language 'xx'.*en, fr"):
        load_split("xnli", "validation", "xx", data_dir=shared_data)
    with pytest.raises(XltError, match=r"unknown split 'dev'.*validation"):
        load_split("xnli", "dev", "en", data_dir=shared_data)


def test_missing_language_file_names_the_path(tmp_path, shared_data):
    (tmp_path / "xnli").mkdir()
    (tmp_path / "xnli" / "validation-en.tsv").write_bytes((shared_data / "xnli" / "validation-en.tsv").read_bytes())
    assert len(load_split("xnli", "validation", "en", data_dir=tmp_path)) == 2490
    with pytest.raises(XltError) as err:
        load_split("xnli", "validation", "sw", data_dir=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "xnli" / "validation-sw.tsv") in msg and "validation-en.tsv" in msg
    assert "facebook/xnli" in msg   # the hub would have it


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = write_task(tmp_path, MY_TASK.replace("source_lang: en", "source_lang: [en"))
    spec, problems = check_task_file(path)
    assert spec is None and len(problems) == 1
    assert problems[0].file == str(path) and problems[0].line is not None and "malformed YAML" in problems[0].message
    with pytest.raises(TaskFileError, match=str(path)):
        TaskSpec.from_yaml(path)


def test_every_schema_problem_reported_with_line(tmp_path):
    text = (MY_TASK.replace("version: 1", "version: one").replace("metrics: [accuracy, macro_f1]", "metrics: [acc]")
            .replace("source_lang: en", "source_lang: de").replace("  columns: {text_a: p, text_b: h, label: gold}",
                                                                    "  columns: {text_a: p, label: gold}")
            + "colour: blue\n")
    path = write_task(tmp_path, text)
    _, problems = check_task_file(path)
    messages = [p.message for p in problems]
    lines = {p.message.split()[0]: p.line for p in problems}
    assert any("version must be" in m for m in messages)
    assert any("unknown metric 'acc'" in m for m in messages)
    assert any("source_lang 'de' is not in languages" in m for m in messages)
    assert any("no 'text_b'" in m for m in messages)
    assert any("unknown key 'colour'" in m for m in messages)
    assert all(p.line and p.fix for p in problems)
    text_lines = text.splitlines()
    for p in problems:   # each line points at the key concerned
        key = {"version": "version", "unknown key 'colour'": "colour", "columns": "columns"}
        for needle, k in key.items():
            if p.message.startswith(needle):
                assert text_lines[p.line - 1].lstrip().startswith(k), (p, text_lines[p.line - 1])


def test_unknown_type_is_a_clear_error(tmp_path):
    from xlt import tasktypes

    path = write_task(tmp_path, MY_TASK.replace("pair-classification", "sentence-ranking"))
    _, problems = check_task_file(path)
    assert any("unknown type 'sentence-ranking'" in p.message and p.line == 2 for p in problems)
    assert all(name in problems[0].fix for name in tasktypes.names())


def test_broken_or_duplicate_user_task_is_reported_and_an_error_when_asked_for(tmp_path):
    write_task(tmp_path / "a", MY_TASK.replace("version: 1", "version: [1"))
    problems: list = []
    assert "mytask" not in {t.name for t in list_tasks(tmp_path / "a", problems)}
    assert [Path(p.file).name for p in problems] == ["mytask.yaml"]   # reported, never silently dropped
    with pytest.raises(TaskFileError, match="mytask.yaml"):
        get_task("mytask", tasks_dir=tmp_path / "a")
    assert get_task("xnli", tasks_dir=tmp_path / "a").name == "xnli"   # it does not hide the other tasks
    write_task(tmp_path / "b", MY_TASK.replace("name: mytask", "name: xnli"), name="xnli")
    with pytest.raises(TaskFileError, match="duplicate task name 'xnli'"):
        get_task("xnli", tasks_dir=tmp_path / "b")


def test_user_task_end_to_end_with_label_map(tmp_path, monkeypatch):
    write_task(tmp_path)
    rows = [("A man eats.", "Someone eats.", "entailment"), ('He said "no" NA', "null", "contradictory"),
            ("x", "y", "neutral")]
    write_rows(tmp_path / "data" / "test-xx.tsv", rows)
    task = get_task("mytask", tasks_dir=tmp_path)
    split = load_split(task, "test", "xx")
    assert split.frame["label"].tolist() == [0, 2, 1]
    assert split.frame["text_a"][1] == 'He said "no" NA' and split.frame["text_b"][1] == "null"
    monkeypatch.setenv("XLT_TASKS_PATH", str(tmp_path))
    assert get_task("mytask").name == "mytask"
    assert get_task(str(tmp_path / "mytask.yaml")).name == "mytask"


def test_missing_column_lists_columns_present(tmp_path):
    write_task(tmp_path)
    write_rows(tmp_path / "data" / "test-xx.tsv", [("a", "b", "neutral")], header="p\thyp\tgold")
    with pytest.raises(XltError, match=r"'h' missing .* it has: p, hyp, gold"):
        load_split(get_task("mytask", tmp_path), "test", "xx")


def test_label_outside_label_set_counts_and_samples(tmp_path):
    write_task(tmp_path)
    write_rows(tmp_path / "data" / "test-xx.tsv",
               [("a", "b", "neutral"), ("c", "d", "maybe"), ("e", "f", "maybe"), ("g", "h", "")])
    with pytest.raises(XltError, match=r"3 row\(s\).*label outside.*first at row 1.*'p': 'c'"):
        load_split(get_task("mytask", tmp_path), "test", "xx")


def test_empty_split(tmp_path):
    write_task(tmp_path)
    write_rows(tmp_path / "data" / "test-xx.tsv", [])
    with pytest.raises(XltError, match="empty split"):
        load_split(get_task("mytask", tmp_path), "test", "xx")


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_other_local_formats(tmp_path, fmt):
    import pandas as pd

    frame = pd.DataFrame({"premise": ['a "q", b', "NA"], "hypothesis": ["c", "null"], "label": [2, 0]})
    folder = tmp_path / "xnli"
    folder.mkdir()
    path = folder / f"validation-fr.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(path)
    split = load_split("xnli", "validation", "fr", data_dir=tmp_path)
    assert split.frame["text_a"].tolist() == ['a "q", b', "NA"] and split.frame["label"].tolist() == [2, 0]


def test_hub_unreachable_names_data_dir(monkeypatch):
    from xlt import hub

    monkeypatch.setattr(hub, "_offline", None)   # no earlier probe of this process answers instead of the variable
    monkeypatch.setattr(hub, "_reason", "")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("XLT_DATA_DIR", raising=False)
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'facebook/xnli' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(XltError, match=r"from the Hugging Face hub: HF_HUB_OFFLINE is set.*--data-dir.*"
                                       r"xnli/validation-sw\.tsv"):
        load_split("xnli", "validation", "sw")


# -- hub sources, with datasets.load_dataset replaced by a recorder (no network) ---------------------

@pytest.fixture()
def fake_hub(monkeypatch):
    import datasets

    calls = []

    def load_dataset(path, name=None, split=None, revision=None, **kwargs):
        calls.append({"path": path, "name": name, "split": split, "revision": revision, **kwargs})
        if path == "google-research-datasets/paws-x":
            return datasets.Dataset.from_dict({"id": [1, 2, 3], "sentence1": ["a", "b", "c"],
                                               "sentence2": ["d", "e", "f"], "label": [1, -1, 0]})
        return datasets.Dataset.from_dict({"premise": ["p1", "p2"], "hypothesis": ["h1", "h2"], "label": [2, 0]})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.delenv("XLT_DATA_DIR", raising=False)
    monkeypatch.setattr(xlt.hub, "_offline", False)   # a hub that answers: no network probe
    return calls


def test_hub_source_arguments_and_origin(fake_hub):
    split = load_split("xnli", "test", "sw")
    assert fake_hub[-1] == {"path": "facebook/xnli", "name": "sw", "split": "test",
                            "revision": get_task("xnli").sources[-1].revision}
    assert split.revision == get_task("xnli").sources[-1].revision and split.origin.startswith("hub:facebook/xnli@")
    assert split.frame["label"].tolist() == [2, 0]


def test_task_takes_train_split_from_another_dataset(fake_hub):
    load_split("americasnli", "train", "en")
    assert fake_hub[-1]["path"] == "facebook/xnli" and fake_hub[-1]["name"] == "en"
    load_split("americasnli", "test", "quy")
    call = fake_hub[-1]
    assert call["path"] == "nala-cub/americas_nli" and call["data_files"] == {"test": "quy/test/*.parquet"}
    load_split("indicxnli", "validation", "or")
    assert fake_hub[-1]["data_files"] == {"validation": "or/validation/*.parquet"}


def test_pawsx_drops_unlabelled_rows(fake_hub):
    split = load_split("pawsx", "train", "en")
    assert fake_hub[-1]["name"] == "en" and split.dropped == 1
    assert split.frame["label"].tolist() == [1, 0] and split.frame["text_a"].tolist() == ["a", "c"]


def test_hub_error_that_is_not_connectivity(monkeypatch):
    import datasets

    def broken(*args, **kwargs):
        raise ValueError("BuilderConfig 'xx' not found. Available: ['en', 'fr']")

    monkeypatch.setattr(datasets, "load_dataset", broken)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("XLT_DATA_DIR", raising=False)
    monkeypatch.setattr(xlt.hub, "_offline", False)   # a hub that answers: no network probe
    with pytest.raises(XltError, match=r"could not load facebook/xnli config sw.*BuilderConfig.*xnli\.yaml"):
        load_split("xnli", "validation", "sw")


def test_built_wheel_ships_the_task_files(tmp_path):
    """`pip wheel .` packs tasks/*.yaml (through the xlt/_data symlinks) and the wheel finds them."""
    import importlib.metadata
    import shutil
    import subprocess
    import sys
    import zipfile

    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        pytest.skip("not a checkout")
    try:
        if int(importlib.metadata.version("setuptools").split(".")[0]) < 69:
            pytest.skip("setuptools>=69 needed to build without isolation (no network)")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("setuptools not installed")
    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("xlt", "tasks"):
        shutil.copytree(root / name, src / name, symlinks=True, ignore=ignore)
    shutil.copytree(root / "results" / "reference", src / "results" / "reference")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("xlt-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for task in BUILTIN:
        assert f"xlt/_data/tasks/{task}.yaml" in names
    assert "xlt/_data/reference/xnli.csv" in names
    # installed from the wheel (no checkout around it), the registry still finds every task
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(tmp_path / "inst"),
                    str(wheel)], check=True, timeout=180)
    code = ("import xlt.tasks as t, xlt.paths as p; print(p.builtin_tasks_dir()); "
            "print(sorted(s.name for s in t.list_tasks()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(tmp_path / "inst"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert str(tmp_path / "inst") in out.stdout and "'xnli'" in out.stdout and "'indicxnli'" in out.stdout
