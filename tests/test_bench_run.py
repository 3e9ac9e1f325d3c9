"""`xlt bench run`: both paths on a tiny checkpoint for every task type, and honest transformers baselines."""

import dataclasses
import importlib
import json

import datasets
import numpy as np
import pytest
from typer.testing import CliRunner

from xlt.bench.hf_qa import postprocess_qa_predictions
from xlt.bench.hf_tagging import words_lost
from xlt.bench.run import BASELINES, PATHS, prepare_checkpoint, read_rows
from xlt.cli import app
from xlt.spec import Hyperparams

cli = CliRunner()
PHASES = ("tokenise", "train", "evaluate")
HP = {**dataclasses.asdict(Hyperparams(lr=5e-3, epochs=1.0, batch_size=8, max_seq_len=64, eval_batch_size=16,
                                       window_step=16)), "_steps": 2}

pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


def run_in_process(checkpoint, rows, hp, tmp_path, keep_dir=None) -> dict:
    """Both paths' phases in this process, one after the other: {name: (pipeline, merged phase results)}."""
    ckpt = str(prepare_checkpoint(str(checkpoint), None, tmp_path / "ckpt", rows["num_outputs"], rows["head"]))
    out = {}
    for name, module in (("xlt", PATHS["xlt"]), ("transformers", BASELINES[rows["head"]])):
        pipeline = importlib.import_module(module).PIPELINE(ckpt, rows, hp, "fp32", 1, 0,
                                                            keep_dir if name == "transformers" else None)
        result = {}
        for phase in (*PHASES, "details"):
            result.update(getattr(pipeline, phase)())
        pipeline.close()
        out[name] = (pipeline, result)
    return out


@pytest.mark.parametrize("task, langs, max_len", [("xnli", ["en", "sw"], 64), ("panx", ["en", "zh"], 32),
                                                  ("udpos", ["en", "ar"], 32), ("xquad", ["en", "es"], 96)])
def test_both_paths_score_the_same_examples_against_the_same_gold(tiny_deberta_v3, shared_data, tmp_path,
                                                                   task, langs, max_len):
    """Would catch: a baseline that scores other rows, drops the words it truncated from the gold (run_ner.py's
    own scoring does), scores QA questions in another order or against other answers, or trains a different
    number of steps or rows than xlt."""
    rows = read_rows(task, shared_data, 16, 12, langs, None)
    paths = run_in_process(tiny_deberta_v3, rows, dict(HP, max_seq_len=max_len), tmp_path)
    (x, xr), (t, tr) = paths["xlt"], paths["transformers"]
    assert xr["train_steps"] == tr["train_steps"] == 2 and xr["train_rows"] == tr["train_rows"] == 16
    for lang in langs:
        xs, ts = xr["scores"][lang], tr["scores"][lang]
        assert xs["n"] == ts["n"] == 12 and set(xs) == set(ts) and set(rows["metrics"]) <= set(xs)
        x_gold = x.predictions[x.predictions["lang"] == lang]["label"].tolist()
        assert [list(g) if isinstance(g, (list, np.ndarray)) else g for g in x_gold] == \
            [list(g) if isinstance(g, (list, np.ndarray)) else g for g in t.predictions[lang]["label"].tolist()]
        assert len(x_gold) == 12
        if "n_words" in xs:   # tagging: every gold word is scored on both sides, truncated or not
            assert xs["n_words"] == ts["n_words"] == tr["words"][lang]
    if task == "panx":   # zh sentences run past 32 subwords: the Trainer path loses words, xlt none
        assert tr["words_lost"]["zh"] > 0


def test_the_word_loss_count_is_right_on_a_constructed_case(tiny_deberta_v3):
    """Would catch: words counted from subwords instead of words, a word cut inside (first subword kept) counted
    as lost, special tokens not taken off the budget, or a short sentence reported as cut."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_deberta_v3)
    long = [f"Kommunikation{i}" for i in range(40)]       # several subwords per word
    short = ["a", "b", "c"]
    pieces = [len(tok(w, add_special_tokens=False)["input_ids"]) for w in long]
    first = np.cumsum([0, *pieces[:-1]])                  # each word's first subword in the sentence
    assert min(pieces) > 1 and sum(pieces) > 100
    for edge in (0, 1):   # word 20's first subword is the last one kept ([CLS] + ... + [SEP]), or the first cut
        max_len = int(first[20]) + 3 - edge
        expected = int((first >= max_len - 2).sum())
        assert expected == len(long) - 21 + edge
        assert words_lost(tok, [long, short], max_len).tolist() == [expected, 0]


def _reference_answer(context, features, start, end, max_answer_length):
    """The best context span over every pair of every window (no n-best cut)."""
    best, text = -np.inf, None
    for f, feature in enumerate(features):
        offsets = feature["offset_mapping"]
        for s in range(len(offsets)):
            for e in range(s, min(len(offsets), s + max_answer_length)):
                if offsets[s] is not None and offsets[e] is not None and start[f][s] + end[f][e] > best:
                    best, text = start[f][s] + end[f][e], context[offsets[s][0]:offsets[e][1]]
    return text


@pytest.mark.parametrize("seed", range(5))
def test_the_ported_run_qa_decoding_equals_a_direct_search_over_every_span(seed):
    """Would catch: the port taking spans outside the context (question or padding), an end before its start,
    answers longer than max_answer_length, windows of one question mixed with another's, or offsets read from
    the wrong window."""
    rng = np.random.default_rng(seed)
    contexts = {"q1": "Paris is the capital and largest city of France.", "q2": "Der Rhein fließt durch Basel."}
    features, start, end = [], [], []
    for qid, context in contexts.items():
        words = [(m, m + len(w)) for m, w in zip(np.cumsum([0] + [len(w) + 1 for w in context.split()]),
                                                   context.split())]
        for w0 in (0, 3):   # two overlapping windows: [CLS] q q [SEP] context words ... [SEP] [PAD]
            body = [tuple(map(int, o)) for o in words[w0:w0 + 5]]
            offsets = [None] * 4 + body + [None] * (7 - len(body))   # one length, as run_qa.py pads
            features.append({"example_id": qid, "offset_mapping": offsets})
            start.append(rng.normal(size=len(offsets)))
            end.append(rng.normal(size=len(offsets)))
    examples = datasets.Dataset.from_dict({"id": list(contexts), "context": list(contexts.values())})
    got = postprocess_qa_predictions(examples, features, (np.array(start), np.array(end)), n_best_size=20,
                                     max_answer_length=3)
    for i, (qid, context) in enumerate(contexts.items()):
        mine = [f for f in features if f["example_id"] == qid]
        want = _reference_answer(context, mine, start[2 * i:2 * i + 2], end[2 * i:2 * i + 2], 3)
        assert got[qid] == want


def test_the_ported_decoding_keeps_run_qa_s_n_best_cut_and_its_empty_answer():
    """utils_qa.py pairs only the n-best starts with the n-best ends; when none of those pairs is a context
    span it answers "empty" (its fake prediction), which scores as a wrong answer."""
    examples = datasets.Dataset.from_dict({"id": ["q"], "context": ["alpha beta gamma"]})
    features = [{"example_id": "q", "offset_mapping": [None, (0, 5), (6, 10), (11, 16), None]}]
    start = np.array([[9.0, 1.0, 2.0, 0.0, 0.0]])   # the best start is [CLS]
    end = np.array([[0.0, 0.0, 3.0, 1.0, 8.0]])     # the best end is the last [SEP]
    assert postprocess_qa_predictions(examples, features, (start, end), n_best_size=1) == {"q": "empty"}
    assert postprocess_qa_predictions(examples, features, (start, end), n_best_size=2) == {"q": "beta"}


def test_the_transformers_pair_baseline_reports_what_trainer_evaluate_gives(tiny_deberta_v3, shared_data, tmp_path):
    """The baseline is honest: its per-language accuracies equal a direct `Trainer.evaluate` of the model it
    trained, on the dataset run_xnli.py's preprocessing builds. Would catch: a baseline that scores the wrong
    rows, the wrong labels or an untrained model."""
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments,
                              default_data_collator)

    rows = read_rows("xnli", shared_data, 16, 24, ["en", "sw"], None)
    kept = tmp_path / "trained"
    res = run_in_process(tiny_deberta_v3, rows, HP, tmp_path, keep_dir=str(kept))["transformers"][1]
    tok = AutoTokenizer.from_pretrained(kept)
    model = AutoModelForSequenceClassification.from_pretrained(kept)
    args = TrainingArguments(output_dir=str(tmp_path / "eval"), per_device_eval_batch_size=5, use_cpu=True,
                             report_to=[], disable_tqdm=True)
    trainer = Trainer(model=model, args=args, data_collator=default_data_collator,
                      compute_metrics=lambda p: {"accuracy": float((p.predictions.argmax(1) == p.label_ids).mean())})
    for lang, split in rows["eval"].items():
        frame = split.frame.rename(columns={"text_a": "premise", "text_b": "hypothesis"})
        ds = datasets.Dataset.from_pandas(frame[["premise", "hypothesis", "label"]], preserve_index=False).map(
            lambda ex: tok(ex["premise"], ex["hypothesis"], padding="max_length", max_length=64, truncation=True),
            batched=True)
        assert trainer.evaluate(eval_dataset=ds)["eval_accuracy"] == pytest.approx(res["scores"][lang]["accuracy"],
                                                                                   abs=1e-9)
    assert res["train_steps"] == 2


def test_without_squad_the_qa_bench_trains_on_the_tail_of_the_english_file_and_says_so(shared_data):
    rows = read_rows("xquad", shared_data, 40, 30, None, None)
    assert list(rows["eval"]) == ["en", "es"] and rows["split"] == "validation"
    assert len(rows["train"]) == 40
    full = read_rows("xquad", shared_data, 1190, 1, ["en"], None)["train"].frame
    assert rows["train"].frame["id"].tolist() == full["id"].tolist()[-40:]
    assert not set(rows["train"].frame["id"]) & set(rows["eval"]["en"].frame["id"])
    assert any("training data: the last 40 rows of xquad validation-en" in n and "none of them is evaluated" in n
               for n in rows["notes"])


@pytest.fixture
def task_file(tmp_path):
    """xnli's task file copied into a folder of its own, under another name (as tests/test_spec_builder.py)."""
    from xlt.tasks import get_task

    text = get_task("xnli").path.read_text().replace("name: xnli", "name: myxnli") \
        .replace("  hub: facebook/xnli\n", "  hub: facebook/xnli\n  data_dir_name: xnli\n")
    path = tmp_path / "tasks" / "myxnli.yaml"
    path.parent.mkdir()
    path.write_text(text)
    return path


def cli_json(*args) -> dict | list:
    result = cli.invoke(app, [*args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_bench_run_times_the_run_that_xlt_run_and_xlt_sweep_name(tiny_xlmr, shared_data, task_file, tmp_path):
    """The benchmark takes its hyperparameters from the one spec builder: for the same model, task (by name
    and by its file's path), seed, overrides (a --set and a dedicated flag), languages and precision, `xlt bench
    run` names the run id `xlt run` and `xlt sweep` give, and uses that run's hyperparameters. Would catch: a
    bench with its own defaults (batch, lr, warmup, length), one that drops an override, the seed, the languages
    or the precision from the spec, or files a task path under another name."""
    model, data = str(tiny_xlmr), str(shared_data)
    for task in ("xnli", str(task_file)):
        run = cli_json("run", "--model", model, "--task", task, "--seed", "3", "--data-dir", data, "--epochs", "2",
                       "--batch-size", "16", "--languages", "sw,fr", "--precision", "fp32", "--dry-run", "--json")
        sweep = cli_json("sweep", "--models", model, "--tasks", task, "--seeds", "3", "--data-dir", data,
                         "--set", "epochs=2", "--set", "batch_size=16", "--languages", "sw,fr", "--precision",
                         "fp32", "--results-dir", str(tmp_path / "r"), "--dry-run", "--json")
        bench = cli_json("bench", "run", "--model", model, "--task", task, "--seed", "3", "--data-dir", data,
                         "--set", "epochs=2", "--batch-size", "16", "--languages", "sw,fr", "--precision", "fp32",
                         "--dry-run", "--json", "-")
        assert bench["run_id"] == run["run_id"] == sweep[0]["run_id"]
        assert bench["spec"] == run["spec"] and bench["task"] == run["spec"]["task"]
        assert bench["hparams"] == run["spec"]["hparams"] and bench["batch_size"] == 16
        assert bench["max_seq_len"] == run["spec"]["hparams"]["max_seq_len"]
    other = cli_json("bench", "run", "--model", model, "--task", "xnli", "--seed", "4", "--data-dir", data,
                     "--dry-run", "--json", "-")
    assert other["run_id"] != bench["run_id"]


@pytest.mark.slow
@pytest.mark.parametrize("task, extra", [("xnli", ["--languages", "en,fr"]), ("panx", ["--languages", "en,zh"]),
                                         ("xquad", ["--max-seq-len", "96"])])
def test_bench_run_times_both_pipelines_and_writes_json(tiny_deberta_v3, shared_data, tmp_path, task, extra):
    """Would catch: a bench run that times only one pipeline, trains a different number of steps in each, or
    writes a JSON without every phase's time, padding share, memory and both paths' scores."""
    out = tmp_path / "bench.json"
    res = cli.invoke(app, ["bench", "run", "--model", str(tiny_deberta_v3), "--task", task, "--data-dir",
                           str(shared_data), "--train-steps", "2", "--eval-samples", "16", "--batch-size", "8",
                           "--json", str(out), *extra])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    rows = {r["pipeline"]: r for r in data["rows"]}
    assert set(rows) == {"xlt", "transformers"} and data["interleaved"]
    for row in rows.values():
        assert row["train_steps"] == 2 and set(row["scores"]) == set(data["languages"])
        for phase in PHASES:
            assert row[f"{phase}_s"] > 0 and 0 <= row[f"{phase}_padding_share"] < 1
        assert row["peak_mem_bytes"] > 0
    assert set(data["speedup"]) == {"tokenise", "train", "evaluate", "total"}
    assert "xlt / transformers speed" in res.output and f"transformers {data['primary_metric']}:" in res.output
    if task == "xquad":   # no SQuAD train file here: xlt run would stop, so there is no run to name
        assert data["run_id"] is None and any(n.startswith("no run id: xlt run stops") for n in data["notes"])
    else:
        run = cli_json("run", "--model", str(tiny_deberta_v3), "--task", task, "--data-dir", str(shared_data),
                       "--precision", "fp32", "--batch-size", "8", *extra, "--dry-run", "--json")
        assert data["run_id"] == run["run_id"] and f"hyperparameters of run {run['run_id']}" in res.output


def test_bench_run_refuses_what_it_cannot_compare(tiny_deberta_v3, shared_data):
    res = cli.invoke(app, ["bench", "run", "--model", str(tiny_deberta_v3), "--data-dir", str(shared_data),
                           "--precision", "fp16"])
    assert res.exit_code == 2 and "fp32 or bf16" in res.output
    res = cli.invoke(app, ["bench", "run", "--model", str(tiny_deberta_v3), "--data-dir", str(shared_data),
                           "--train-steps", "1000", "--batch-size", "32"])
    assert res.exit_code == 2 and "training rows give fewer than 1000 steps" in res.output
    res = cli.invoke(app, ["bench", "run", "--model", str(tiny_deberta_v3), "--data-dir", str(shared_data),
                           "--task", "mlqa"])
    assert res.exit_code == 2 and "mlqa" in res.output
