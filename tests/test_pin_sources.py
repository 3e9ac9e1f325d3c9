"""Pins on what a run reads and how that becomes its identity: the data plan (which (split, language) pairs,
which files, which hub revisions, what is skipped), the data revision that goes into the run id, the source
each (split, language) routes to, and the cache key of a split's bytes. Every file here differs from the
others, so reading or fingerprinting the wrong one cannot pass."""

from __future__ import annotations

import hashlib
import os
import textwrap

import pytest

from tests.test_pin_tasks import distinct_rows, write_task, write_tsv
from xlt.errors import XltError
from xlt.tasks import get_task, load_split
from xlt.tasks.sources import available_splits, fingerprint, local_candidates, local_file, plan_data
from xlt.tasks.taskspec import Source

SIZES = {"train-en": 9, "validation-en": 7, "test-en": 5, "validation-fr": 6, "test-fr": 4, "validation-sw": 3}


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    for i, (stem, n) in enumerate(SIZES.items()):
        write_tsv(d / "pin" / f"{stem}.tsv", distinct_rows(stem, n, [(i + k) % 3 for k in range(3)]))
    return d


def expected_fingerprint(paths):
    """local-sha256 of "name:sha256(content)" lines, sorted, joined by newlines (the files' folders left out)."""
    lines = sorted(f"{p.name}:{hashlib.sha256(p.read_bytes()).hexdigest()}" for p in set(paths))
    return "local-sha256:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def test_the_plan_reads_train_and_dev_then_every_readable_eval_split_and_skips_the_rest(tmp_path, data_dir):
    """Would catch the source dev read twice, a language without a file read anyway (or a present one skipped),
    the wrong split's files fingerprinted, or the pattern of the files looked for naming the wrong ones."""
    task = write_task(tmp_path / "tasks", languages=("en", "fr", "sw", "de"))
    plan = plan_data(task, data_dir)
    assert plan.reads == [("train", "en"), ("validation", "en"), ("test", "en"), ("test", "fr"),
                          ("validation", "fr"), ("validation", "sw")]
    assert plan.files == [data_dir / "pin" / f"{s}-{l}.tsv" for s, l in plan.reads]
    assert plan.hub == [] and plan.skipped == {"test": ["sw", "de"], "validation": ["de"]}
    folder = data_dir / "pin"
    assert plan.looked_for == {"test": f"{folder}/test-{{sw,de}}.{{tsv,csv,jsonl,parquet}}",
                               "validation": f"{folder}/validation-de.{{tsv,csv,jsonl,parquet}}"}
    assert plan.revision == expected_fingerprint(plan.files)
    only = plan_data(task, data_dir, languages=["en"])
    assert only.reads == [("train", "en"), ("validation", "en"), ("test", "en")] and only.skipped == {}


def test_the_data_revision_changes_with_content_not_with_the_folder(tmp_path, data_dir):
    task = write_task(tmp_path / "tasks", languages=("en", "fr"))
    before = plan_data(task, data_dir).revision
    moved = tmp_path / "elsewhere"
    os.rename(data_dir, moved)
    assert plan_data(task, moved).revision == before
    path = moved / "pin" / "test-fr.tsv"
    path.write_text(path.read_text().replace("premise 0", "premise zero"))
    assert plan_data(task, moved).revision != before
    path.rename(moved / "pin" / "test-fr.txt")               # a file that is no longer read
    assert plan_data(task, moved).revision == expected_fingerprint(plan_data(task, moved).files)
    assert fingerprint([path.parent / "test-fr.txt", path.parent / "test-fr.txt"]) == \
        expected_fingerprint([path.parent / "test-fr.txt"])


def test_a_hub_plan_is_the_pinned_revisions_of_its_sources_sorted_once(tmp_path):
    source = textwrap.dedent("""\
        sources:
          - languages: [fr]
            hub: org/french
            revision: zzz
            columns: {text_a: p, text_b: h, label: y}
          - hub: org/main
            revision: abc
            columns: {text_a: p, text_b: h, label: y}
        """)
    plan = plan_data(write_task(tmp_path / "tasks", source=source), None)
    assert plan.files == [] and plan.skipped == {} and len(plan.reads) == 5
    assert plan.hub == ["org/main@abc"] * 3 + ["org/french@zzz"] * 2
    assert plan.revision == "org/french@zzz, org/main@abc"


def test_required_files_are_errors_before_anything_is_read(tmp_path, data_dir):
    task = write_task(tmp_path / "tasks")
    (data_dir / "pin" / "validation-en.tsv").unlink()
    with pytest.raises(XltError, match="missing local data for task 'pin' split 'validation' language 'en'"):
        plan_data(task, data_dir)
    source = "source:\n  files: data/{split}-{lang}.tsv\n  columns: {text_a: p, text_b: h, label: y}\n"
    files_task = write_task(tmp_path / "tasks2", source=source)
    for stem in ("train-en", "validation-en", "test-en", "validation-fr"):
        write_tsv(tmp_path / "tasks2" / "data" / f"{stem}.tsv", distinct_rows(stem, 2, [0]))
    with pytest.raises(XltError, match=r"expected \S+/data/test-fr\.tsv for split 'test'"):
        plan_data(files_task, None)      # a file the task file names is required, even for evaluation


def test_candidates_and_the_file_found(tmp_path, data_dir):
    task = write_task(tmp_path / "tasks")
    folder = data_dir / "pin"
    assert local_candidates(task, "test", "fr", data_dir) == [folder / f"test-fr.{e}" for e in
                                                             ("tsv", "csv", "jsonl", "parquet")]
    assert local_candidates(task, "test", "fr", None) == [] and local_file(task, "test", "fr", None) is None
    (folder / "test-fr.tsv").unlink()
    (folder / "test-fr.jsonl").write_text("{}\n")
    (folder / "test-fr.parquet.txt").write_text("not a candidate\n")
    assert local_file(task, "test", "fr", data_dir) == folder / "test-fr.jsonl"
    renamed = write_task(tmp_path / "tasks3", source="source:\n  hub: a/b\n  revision: r\n  data_dir_name: other\n"
                                                     "  columns: {text_a: p, text_b: h, label: y}\n")
    assert local_candidates(renamed, "test", "fr", data_dir)[0] == data_dir / "other" / "test-fr.tsv"


def test_available_splits_with_a_files_source_count_every_language(tmp_path):
    source = "source:\n  files: data/{split}-{lang}.tsv\n  columns: {text_a: p, text_b: h, label: y}\n"
    task = write_task(tmp_path / "tasks", source=source, languages=("en", "fr"))
    assert available_splits(task, tmp_path / "anything") == {"test": ("en", "fr"), "validation": ("en", "fr")}


def test_the_source_key_follows_the_bytes_and_the_task_definition(tmp_path, data_dir):
    """The feature cache's key for a split: another file content, size or label order must give another key;
    the same file read twice the same key."""
    task = write_task(tmp_path / "tasks")
    first = load_split(task, "test", "fr", data_dir)
    assert load_split(task, "test", "fr", data_dir).source_key == first.source_key
    assert first.revision is None and first.origin == str((data_dir / "pin" / "test-fr.tsv").resolve())
    other_lang = load_split(task, "test", "en", data_dir)
    assert other_lang.source_key != first.source_key
    write_task(tmp_path / "tasks_b")
    yaml = tmp_path / "tasks_b" / "pin.yaml"
    yaml.write_text(yaml.read_text().replace("labels: [entailment, neutral", "labels: [neutral, entailment"))
    reordered = get_task("pin", tasks_dir=tmp_path / "tasks_b")
    assert load_split(reordered, "test", "fr", data_dir).source_key != first.source_key
    path = data_dir / "pin" / "test-fr.tsv"
    path.write_text(path.read_text() + "more\tlines\t1\n")
    assert load_split(task, "test", "fr", data_dir).source_key != first.source_key


def test_an_id_prefix_keeps_only_that_languages_rows(tmp_path):
    """TyDiQA-GoldP's shape: one file mixing languages, told apart by the id."""
    source = textwrap.dedent("""\
        source:
          files: data/{split}.tsv
          id_prefix: "{lang}-"
          lang_codes: {fr: french}
          columns: {text_a: p, text_b: h, label: y}
        """)
    task = write_task(tmp_path / "tasks", source=source.replace("{split}.tsv", "{split}-{lang}.tsv"))
    rows = [("french-1", "a", "b", 0), ("english-1", "c", "d", 1), ("french-2", "e", "f", 2), ("xfrench-3", "g", "h", 0)]
    write_tsv(tmp_path / "tasks" / "data" / "test-french.tsv", rows, header=("id", "p", "h", "y"))
    got = load_split(task, "test", "fr")
    assert got.frame["text_a"].tolist() == ["a", "e"] and got.frame["label"].tolist() == [0, 2]
    assert list(got.frame.index) == [0, 1]
    write_tsv(tmp_path / "tasks" / "data" / "test-french.tsv", rows[1:2], header=("id", "p", "h", "y"))
    with pytest.raises(XltError, match="no row of .* has an id starting with 'french-'"):
        load_split(task, "test", "fr")


def test_a_missing_column_and_an_empty_file_are_named(tmp_path, data_dir):
    task = write_task(tmp_path / "tasks")
    write_tsv(data_dir / "pin" / "test-fr.tsv", [("a", "b", 0)], header=("p", "hyp", "y"))
    with pytest.raises(XltError, match=r"column\(s\) 'h' missing from pin test-fr .* it has: p, hyp, y"):
        load_split(task, "test", "fr", data_dir)
    (data_dir / "pin" / "test-fr.tsv").write_text("p\th\ty\n")
    with pytest.raises(XltError, match="empty split: pin test-fr .* has no rows"):
        load_split(task, "test", "fr", data_dir)


# --------------------------------------------------------------------------------------------------
# Routing


def test_a_source_serves_its_languages_and_splits_under_their_own_names():
    src = Source(files="/d/{split}.{lang}.tsv", split_names=(("validation", "dev"),), lang_codes=(("fr", "fra"),),
                 languages=("fr", "de"), splits=("validation", "test"))
    assert [src.matches(s, l) for s, l in [("test", "fr"), ("validation", "de"), ("train", "fr"), ("test", "en")]] \
        == [True, True, False, False]
    assert Source().matches("anything", "xx")
    assert (src.source_split("validation"), src.source_split("test")) == ("dev", "test")
    assert (src.source_lang("fr"), src.source_lang("de")) == ("fra", "de")
    assert str(src.local_path("validation", "fr")) == "/d/dev.fra.tsv"
    assert str(src.local_path("test", "de")) == "/d/test.de.tsv"


def test_a_task_routes_each_split_and_language_to_the_first_source_that_serves_it(tmp_path):
    source = textwrap.dedent("""\
        sources:
          - splits: [train, validation]
            languages: [en]
            hub: org/english
            revision: a
            columns: {text_a: p, text_b: h, label: y}
          - languages: [fr]
            hub: org/french
            revision: b
            columns: {text_a: p, text_b: h, label: y}
          - hub: org/rest
            revision: c
            columns: {text_a: p, text_b: h, label: y}
        """)
    task = write_task(tmp_path / "tasks", source=source, languages=("en", "fr", "sw"))
    hubs = {(s, l): task.source_for(s, l).hub for s in task.splits for l in task.languages}
    assert hubs == {("train", "en"): "org/english", ("validation", "en"): "org/english", ("test", "en"): "org/rest",
                    ("train", "fr"): "org/french", ("validation", "fr"): "org/french", ("test", "fr"): "org/french",
                    ("train", "sw"): "org/rest", ("validation", "sw"): "org/rest", ("test", "sw"): "org/rest"}
    assert task.splits == ("train", "validation", "test")
    with pytest.raises(XltError, match="unknown language 'de' for task 'pin'; valid: en, fr, sw"):
        task.source_for("test", "de")
    with pytest.raises(XltError, match="unknown split 'dev' for task 'pin'; valid: train, validation, test"):
        task.source_for("dev", "en")
    narrow = write_task(tmp_path / "narrow", source=source.replace("  - hub: org/rest",
                                                                     "  - splits: [test, validation]\n    hub: org/rest"),
                        languages=("en", "fr", "sw"))
    with pytest.raises(XltError, match="task 'pin' has no source for split 'train' in language 'sw'"):
        narrow.source_for("train", "sw")
