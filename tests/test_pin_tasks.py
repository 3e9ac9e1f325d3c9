"""Pins on what a split reads: the file of that split and language (never another split's), labels mapped to
the task's label order, and labels outside the label set refused. Each file here has content that differs
from its neighbours, so reading the wrong one cannot pass."""

from __future__ import annotations

import json
import textwrap

import pandas as pd
import pytest

# Imports from xlt in one place (tasks.py becomes a package: schema / sources / registry).
from xlt.errors import XltError
from xlt.tasks import available_splits, get_task, load_split

LABELS = ["entailment", "neutral", "contradiction"]


def write_task(folder, name="pin", source=None, languages=("en", "fr"), extra=""):
    source = source or "source:\n  hub: some/dataset\n  revision: abc\n  columns: {text_a: p, text_b: h, label: y}\n"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(textwrap.dedent(f"""\
        name: {name}
        type: pair-classification
        version: 1
        labels: [{", ".join(LABELS)}]
        source_lang: en
        languages: [{", ".join(languages)}]
        eval_splits: [test, validation]
        metrics: [accuracy, macro_f1]
        """) + extra + source)
    return get_task(name, tasks_dir=folder)


def write_tsv(path, rows, header=("p", "h", "y")):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join("\t".join(map(str, r)) for r in [header, *rows]) + "\n", encoding="utf-8")


def distinct_rows(tag, n, labels):
    """Rows whose text names their file, so a frame shows where it came from."""
    return [(f"{tag} premise {i}", f"{tag} hypothesis {i}", labels[i % len(labels)]) for i in range(n)]


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    sizes = {"train-en": 9, "validation-en": 7, "test-en": 5, "validation-fr": 6, "test-fr": 4}
    for i, (stem, n) in enumerate(sizes.items()):
        write_tsv(d / "pin" / f"{stem}.tsv", distinct_rows(stem, n, [(i + k) % 3 for k in range(3)]))
    return d


@pytest.mark.parametrize("split, lang", [("train", "en"), ("validation", "en"), ("test", "en"),
                                         ("validation", "fr"), ("test", "fr")])
def test_each_split_and_language_reads_its_own_file(tmp_path, data_dir, split, lang):
    """Catches a source language's test split served from its dev file (or any split/lang mix-up)."""
    task = write_task(tmp_path / "tasks")
    got = load_split(task, split, lang, data_dir)
    raw = pd.read_csv(data_dir / "pin" / f"{split}-{lang}.tsv", sep="\t", dtype=str)
    assert got.frame["text_a"].tolist() == raw["p"].tolist()
    assert got.frame["text_b"].tolist() == raw["h"].tolist()
    assert got.frame["label"].tolist() == raw["y"].astype(int).tolist()
    assert (got.split, got.lang, got.task) == (split, lang, "pin")
    assert got.origin.endswith(f"{split}-{lang}.tsv") and got.dropped == 0


def test_available_splits_lists_exactly_the_languages_with_files(tmp_path, data_dir):
    task = write_task(tmp_path / "tasks", languages=("en", "fr", "sw"))
    (data_dir / "pin" / "test-fr.tsv").unlink()
    assert available_splits(task, data_dir) == {"test": ("en",), "validation": ("en", "fr")}
    assert available_splits(task, data_dir, ["train"]) == {"train": ("en",)}
    assert available_splits(task, None) == {"test": ("en", "fr", "sw"), "validation": ("en", "fr", "sw")}


def test_sources_route_by_language_and_split(tmp_path):
    """A task whose English comes from one folder and targets from a pattern with renamed splits and language
    codes (americasnli.yaml's shape): each (split, lang) must read from the source that serves it."""
    d = tmp_path / "data"
    write_tsv(d / "english" / "train-en.tsv", distinct_rows("english-train", 4, [0, 1, 2]))
    write_tsv(d / "english" / "validation-en.tsv", distinct_rows("english-dev", 3, [2, 1, 0]))
    write_tsv(d / "english" / "test-en.tsv", distinct_rows("english-test", 2, [1]))
    files = tmp_path / "tasks" / "files"
    write_tsv(files / "dev.fra.tsv", distinct_rows("fra-dev", 3, [0]))
    write_tsv(files / "test.fra.tsv", distinct_rows("fra-test", 2, [2]))
    source = textwrap.dedent("""\
        sources:
          - languages: [en]
            hub: some/english
            revision: abc
            columns: {text_a: p, text_b: h, label: y}
            data_dir_name: english
          - files: files/{split}.{lang}.tsv
            split_names: {validation: dev}
            lang_codes: {fr: fra}
            columns: {text_a: p, text_b: h, label: y}
        """)
    task = write_task(tmp_path / "tasks", source=source)
    reads = {(s, l): load_split(task, s, l, d).frame["text_a"][0] for s, l in
             [("train", "en"), ("validation", "en"), ("test", "en"), ("validation", "fr"), ("test", "fr")]}
    assert reads == {("train", "en"): "english-train premise 0", ("validation", "en"): "english-dev premise 0",
                     ("test", "en"): "english-test premise 0", ("validation", "fr"): "fra-dev premise 0",
                     ("test", "fr"): "fra-test premise 0"}


# --------------------------------------------------------------------------------------------------
# Labels


@pytest.mark.parametrize("bad", ["3", "-1", "7", "1.5", "contradictory", ""])
def test_out_of_range_labels_in_a_local_file_are_refused(tmp_path, data_dir, bad):
    """Catches labels outside 0..num_labels-1 (or unknown names) silently accepted: a label 3 for a 3-way
    head would crash the loss or, mapped elsewhere, train on wrong targets."""
    task = write_task(tmp_path / "tasks")
    write_tsv(data_dir / "pin" / "test-fr.tsv", [("a", "b", "2"), ("c", "d", bad), ("e", "f", "0")])
    with pytest.raises(XltError, match=r"1 row\(s\) of pin test-fr .* have a label outside "
                                       r"\['entailment', 'neutral', 'contradiction'\].*first at row 1"):
        load_split(task, "test", "fr", data_dir)


def test_the_highest_valid_id_and_every_label_name_are_accepted(tmp_path, data_dir):
    task = write_task(tmp_path / "tasks")
    write_tsv(data_dir / "pin" / "test-fr.tsv",
              [("a", "b", "2"), ("c", "d", " 0 "), ("e", "f", "contradiction"), ("g", "h", "entailment"),
               ("i", "j", "neutral"), ("k", "l", "1")])
    assert load_split(task, "test", "fr", data_dir).frame["label"].tolist() == [2, 0, 2, 0, 1, 1]


@pytest.mark.parametrize("values, expected", [([2, 0, 1], [2, 0, 1]), ([2.0, 0.0, 1.0], [2, 0, 1])])
def test_numeric_labels_from_typed_formats(tmp_path, values, expected):
    """jsonl/parquet keep numbers as numbers (floats when a column had a missing value)."""
    task = write_task(tmp_path / "tasks")
    frame = pd.DataFrame({"p": ["a", "b", "c"], "h": ["d", "e", "f"], "y": values})
    path = tmp_path / "data" / "pin" / "test-fr.parquet"
    path.parent.mkdir(parents=True)
    frame.to_parquet(path)
    assert load_split(task, "test", "fr", tmp_path / "data").frame["label"].tolist() == expected
    frame.assign(y=[3.0, 0.0, 1.0]).to_parquet(path)
    with pytest.raises(XltError, match="label outside"):
        load_split(task, "test", "fr", tmp_path / "data")


def test_label_map_maps_source_values_to_the_task_label_order(tmp_path):
    """Catches a label map applied in the wrong direction or ids taken from the map's order: the map below
    lists contradiction first, but ids follow `labels:` (entailment 0, neutral 1, contradiction 2)."""
    source = textwrap.dedent("""\
        source:
          files: data/{split}-{lang}.jsonl
          columns: {text_a: p, text_b: h, label: gold}
          label_map: {c: contradiction, "0": entailment, n: neutral}
          drop_labels: ["-"]
        """)
    task = write_task(tmp_path / "tasks", source=source)
    rows = [{"p": "a", "h": "b", "gold": "n"}, {"p": "c", "h": "d", "gold": "c"}, {"p": "x", "h": "y", "gold": "-"},
            {"p": "e", "h": "f", "gold": 0}, {"p": "g", "h": "h", "gold": "c"}]
    path = tmp_path / "tasks" / "data" / "test-fr.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    split = load_split(task, "test", "fr")
    assert split.frame["label"].tolist() == [1, 2, 0, 2]
    assert split.frame["text_a"].tolist() == ["a", "c", "e", "g"] and split.dropped == 1
    assert list(split.frame.columns) == ["text_a", "text_b", "label"] and list(split.frame.index) == [0, 1, 2, 3]
    rows[0]["gold"] = "neutral"          # with a label_map, only its keys are valid source values
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(XltError, match="label outside"):
        load_split(task, "test", "fr")


def test_xnli_labels_are_the_hub_class_order(shared_data):
    """The real XNLI file: label ids as released (0 entailment, 1 neutral, 2 contradiction), 830 of each."""
    split = load_split(get_task("xnli"), "validation", "fr", shared_data)
    raw = pd.read_csv(shared_data / "xnli" / "validation-fr.tsv", sep="\t", quoting=3, dtype=str,
                      keep_default_na=False)
    assert split.frame["label"].tolist() == raw["label"].astype(int).tolist()
    assert split.frame["label"].value_counts().to_dict() == {0: 830, 1: 830, 2: 830}
    assert split.label_names == ("entailment", "neutral", "contradiction")


def test_head_takes_the_first_rows_and_changes_the_identity(tmp_path, data_dir):
    """max_train_samples / max_eval_samples: the first n rows in source order, a fresh 0..n-1 index, and a
    source key of its own (the feature cache must not hand the full split's features to a head)."""
    full = load_split(write_task(tmp_path / "tasks"), "train", "en", data_dir)
    head = full.head(4)
    assert head.frame["text_a"].tolist() == full.frame["text_a"].tolist()[:4]
    assert list(head.frame.columns) == list(full.frame.columns) and list(head.frame.index) == [0, 1, 2, 3]
    assert head.source_key != full.source_key and len(head) == 4
    for same in (None, len(full), len(full) + 5):
        assert full.head(same) is full


def test_text_columns_are_strings_even_when_a_typed_file_holds_numbers_or_nulls(tmp_path):
    task = write_task(tmp_path / "tasks")
    path = tmp_path / "data" / "pin" / "test-fr.jsonl"
    path.parent.mkdir(parents=True)
    rows = [{"p": 123, "h": None, "y": 1}, {"p": "a", "h": 4.5, "y": 0}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    frame = load_split(task, "test", "fr", tmp_path / "data").frame
    assert frame["text_a"].tolist() == ["123", "a"] and frame["text_b"].tolist() == ["", "4.5"]


def test_a_files_source_is_read_in_its_declared_format(tmp_path):
    """`format:` wins over the extension for `files:` sources (a .txt holding TSV)."""
    source = "source:\n  files: data/{split}-{lang}.txt\n  format: tsv\n  columns: {text_a: p, text_b: h, label: y}\n"
    task = write_task(tmp_path / "tasks", source=source)
    write_tsv(tmp_path / "tasks" / "data" / "test-fr.txt", [("a", "b", "2"), ("c", "d", "0")])
    assert load_split(task, "test", "fr").frame["label"].tolist() == [2, 0]


def test_two_files_for_one_split_are_an_error(tmp_path, data_dir):
    task = write_task(tmp_path / "tasks")
    pd.read_csv(data_dir / "pin" / "test-fr.tsv", sep="\t", dtype=str).to_csv(data_dir / "pin" / "test-fr.csv",
                                                                             index=False)
    with pytest.raises(XltError, match="several files hold pin test-fr"):
        load_split(task, "test", "fr", data_dir)


def test_a_split_whose_every_row_is_dropped_is_an_error(tmp_path):
    source = ("source:\n  files: data/{split}-{lang}.tsv\n  drop_labels: [\"-1\"]\n"
              "  columns: {text_a: p, text_b: h, label: y}\n")
    task = write_task(tmp_path / "tasks", source=source)
    write_tsv(tmp_path / "tasks" / "data" / "test-fr.tsv", [("a", "b", "-1"), ("c", "d", "-1")])
    with pytest.raises(XltError, match=r"empty split: every row of pin test-fr .* drop_labels \['-1'\]"):
        load_split(task, "test", "fr")


def test_missing_files_are_named_with_the_fix(tmp_path, data_dir):
    task = write_task(tmp_path / "tasks", languages=("en", "fr", "sw"))
    with pytest.raises(XltError, match=r"missing local data for task 'pin' split 'test' language 'sw': expected "
                                       r"\S+/pin/test-sw\.tsv \(or \.csv/\.jsonl/\.parquet\); \S+ has: "
                                       r"test-en\.tsv, test-fr\.tsv, train-en\.tsv"):
        load_split(task, "test", "sw", data_dir)
    source = "source:\n  files: data/{split}-{lang}.tsv\n  columns: {text_a: p, text_b: h, label: y}\n"
    files_task = write_task(tmp_path / "tasks2", source=source)
    with pytest.raises(XltError, match=r"task 'pin': expected \S+/data/test-fr\.tsv for split 'test', language "
                                       r"'fr' \(from `files:` in \S+pin\.yaml\); create it or fix the pattern"):
        load_split(files_task, "test", "fr")
