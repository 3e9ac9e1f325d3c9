"""`xlt eval` (issue 24): a checkpoint someone fine-tuned, evaluated on every language with its own head, its
labels matched to the task's by name. Tiny checkpoints saved with transformers' save_pretrained (real id2label,
real layouts), the real XNLI, PAN-X and XQuAD files in ../shared/data."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from tests import factories
from xlt import checkpoint_eval, runner
from xlt.cli import app
from xlt.evaluate import metrics_from_predictions
from xlt.labelmatch import LabelMatch
from xlt.recipes import build_spec
from xlt.results import load_predictions, load_records
from xlt.tasks import get_task

cli = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py

NLI = ["entailment", "neutral", "contradiction"]
PANX = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
TOKENIZER_FILES = ("spm.model", "tokenizer_config.json", "sentencepiece.bpe.model")


def spread(config):
    """A tiny config whose random weights are large enough that predictions spread over the classes (with
    transformers' 0.02 every example gets the same class, and a wrong label order could go unnoticed)."""
    return dict(config, initializer_range=0.5)


def relabelled(src, dst, order, names, extra=()):
    """A copy of checkpoint `src` whose classifier rows are reordered (row i = the original's row order[i]) and
    whose id2label says so with `names` (row i's label), plus `extra` rows (name, bias) with zero weights: the
    same function for the original's labels, in another order. Saved with transformers' save_pretrained."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification

    config = AutoConfig.from_pretrained(src)
    auto = AutoModelForTokenClassification if config.architectures[0].endswith("TokenClassification") \
        else AutoModelForSequenceClassification
    state = auto.from_pretrained(src).state_dict()
    weight, bias = state["classifier.weight"], state["classifier.bias"]
    state["classifier.weight"] = torch.cat([weight[order], weight.new_zeros(len(extra), weight.shape[1])])
    state["classifier.bias"] = torch.cat([bias[order], bias.new_tensor([value for _, value in extra])])
    labels = [*names, *(name for name, _ in extra)]
    config.id2label, config.label2id = dict(enumerate(labels)), {n: i for i, n in enumerate(labels)}
    model = auto.from_config(config)
    model.load_state_dict(state)
    model.save_pretrained(dst)
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy(src / name, dst / name)
    return dst


@pytest.fixture(scope="module")
def nli(tmp_path_factory, spm_model):
    """A 3-way NLI classifier in XNLI's order, and the same function with its rows and names permuted
    (contradiction first, spelled CONTRADICTORY; entailment spelled Entails), labelled LABEL_0..2, and cut to 2
    labels (entailment, not_entailment: the neutral row dropped)."""
    root = tmp_path_factory.mktemp("nli")
    ref = factories.tiny_checkpoint(root / "ref", spread(factories.DEBERTA_V3), spm_model, labels=NLI)
    return {"ref": ref,
            "permuted": relabelled(ref, root / "permuted", [2, 0, 1], ["CONTRADICTORY", "Entails", "neutral"]),
            "label_n": relabelled(ref, root / "label_n", [0, 1, 2], ["LABEL_0", "LABEL_1", "LABEL_2"]),
            "two": relabelled(ref, root / "two", [0, 2], ["entailment", "not_entailment"])}


def evaluate(model, task, data_dir, languages, n=40, impl="auto", label_map=None):
    spec = build_spec(str(model), get_task(task), protocol="evaluate", data_dir=data_dir, languages=languages,
                      max_eval_samples=n, impl=impl, label_map=label_map)
    out = runner.execute(spec, data_dir=data_dir)
    assert out.record["status"] == "completed", out.record["error"]
    return out


def positional(checkpoint_labels, task_labels, label_map=None, task_name=""):
    """A planted matcher that trusts positions: checkpoint id i is task label i."""
    n = len(task_labels)
    return LabelMatch(tuple(task_labels), tuple(checkpoint_labels), tuple(range(n)), ("position",) * n)


@pytest.mark.parametrize("impl", ["native", "hf"])
def test_a_permuted_classifier_predicts_exactly_as_the_original(nli, shared_data, monkeypatch, impl):
    """Would catch: labels compared by id instead of name (a confident, wrong accuracy), on either
    implementation. The permuted checkpoint computes the same function in another label order; by name its
    predictions and accuracy equal the original's, by position (planted below) they do not."""
    ref = evaluate(nli["ref"], "xnli", shared_data, ["en", "fr", "de"], impl=impl)
    got = evaluate(nli["permuted"], "xnli", shared_data, ["en", "fr", "de"], impl=impl)
    assert ref.predictions.groupby("lang")["pred"].nunique().min() >= 2      # the test can see a wrong order
    assert got.predictions["pred"].tolist() == ref.predictions["pred"].tolist()
    assert got.record["metrics"] == ref.record["metrics"]
    labels = got.record["model"]["labels"]
    assert labels["map"] == {"entailment": "Entails", "neutral": "neutral", "contradiction": "CONTRADICTORY"}
    assert labels["how"] == {"entailment": "common spelling", "neutral": "same name",
                             "contradiction": "common spelling"}
    assert got.record["selection"] is None and got.record["spec"]["protocol"] == "evaluate"
    assert got.record["steps"]["train"].startswith("skipped: protocol evaluate")
    assert metrics_from_predictions(got.predictions, ["accuracy", "macro_f1"],
                                    get_task("xnli").task_type) == got.record["metrics"]

    monkeypatch.setattr(checkpoint_eval, "match_labels", positional)
    planted = evaluate(nli["permuted"], "xnli", shared_data, ["en", "fr", "de"], impl=impl)
    assert planted.predictions["pred"].tolist() != ref.predictions["pred"].tolist()


@pytest.fixture(scope="module")
def taggers(tmp_path_factory, spm_model):
    """A PAN-X tagger in the task's tag order, and the same function with its tags permuted plus B-MISC and
    I-MISC rows whose bias would win every word if they were not left out."""
    root = tmp_path_factory.mktemp("taggers")
    ref = factories.tiny_checkpoint(root / "ref", spread(factories.DEBERTA_V3), spm_model, head="token",
                                    labels=PANX)
    order = [5, 0, 3, 6, 1, 4, 2]
    return {"ref": ref, "permuted": relabelled(ref, root / "permuted", order, [PANX[i] for i in order],
                                               extra=[("B-MISC", 50.0), ("I-MISC", 50.0)])}


def test_a_permuted_tagger_with_extra_tags_predicts_exactly_as_the_original(taggers, shared_data, monkeypatch):
    """Would catch: tags compared by id, or a checkpoint's extra tags (B-MISC) predicted on a task without them:
    their rows' bias wins every word unless the logits are restricted to the task's tags."""
    ref = evaluate(taggers["ref"], "panx", shared_data, ["en", "de"], n=30)
    got = evaluate(taggers["permuted"], "panx", shared_data, ["en", "de"], n=30)
    tags = {t for row in ref.predictions["pred"] for t in row}
    assert len(tags) >= 3
    assert got.predictions["pred"].map(list).tolist() == ref.predictions["pred"].map(list).tolist()
    assert got.record["metrics"] == ref.record["metrics"]
    labels = got.record["model"]["labels"]
    assert labels["unused_checkpoint_labels"] == ["B-MISC", "I-MISC"] and labels["never_predicted"] == []
    assert "labels_left_out:B-MISC,I-MISC" in got.record["flags"]

    monkeypatch.setattr(checkpoint_eval, "match_labels", positional)
    planted = evaluate(taggers["permuted"], "panx", shared_data, ["en", "de"], n=30)
    assert planted.predictions["pred"].map(list).tolist() != ref.predictions["pred"].map(list).tolist()


def _eval_args(model, shared_data, results, *extra, task="xnli", languages="en,fr"):
    return ["eval", "--model", str(model), "--task", task, "--data-dir", str(shared_data), "--results-dir",
            str(results), "--languages", languages, "--max-eval-samples", "40", *extra]


def written(results, model):
    """(path, record) of the one record of `model` under `results`."""
    loaded = load_records(results)
    [hit] = [(p, r) for p, r in zip(loaded.paths, loaded.records) if r["spec"]["model"] == str(model)]
    return hit


def test_label_n_and_too_few_labels_are_refused_and_accepted_with_label_map(nli, shared_data, tmp_path):
    """Would catch: LABEL_0..2 taken in order (position), a 2-label model silently scored on 3 labels, or a
    refusal that does not say what the two label lists are and how to map them."""
    results = tmp_path / "results"
    res = cli.invoke(app, _eval_args(nli["label_n"], shared_data, results))
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "[entailment, neutral, contradiction]" in text and "[LABEL_0, LABEL_1, LABEL_2]" in text
    assert "--label-map LABEL_0=entailment,LABEL_1=neutral,LABEL_2=contradiction" in text
    assert load_records(results).records == []                       # refused before anything ran

    res = cli.invoke(app, _eval_args(nli["label_n"], shared_data, results, "--label-map",
                                     "LABEL_0=entailment,LABEL_1=neutral,LABEL_2=contradiction"))
    assert res.exit_code == 0, res.output
    ref = cli.invoke(app, _eval_args(nli["ref"], shared_data, results))
    assert ref.exit_code == 0, ref.output
    (lpath, lrec), (rpath, rrec) = written(results, nli["label_n"]), written(results, nli["ref"])
    assert lrec["spec"]["label_map"] == [["LABEL_0", "entailment"], ["LABEL_1", "neutral"],
                                         ["LABEL_2", "contradiction"]]
    assert set(lrec["model"]["labels"]["how"].values()) == {"--label-map"}
    assert lrec["metrics"] == rrec["metrics"]
    assert load_predictions(lpath)["pred"].tolist() == load_predictions(rpath)["pred"].tolist()

    res = cli.invoke(app, _eval_args(nli["two"], shared_data, results))
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "[entailment, not_entailment]" in text and "the checkpoint has 2 labels and task 'xnli' 3" in text
    assert "--label-map not_entailment=neutral" in text
    res = cli.invoke(app, _eval_args(nli["two"], shared_data, results, "--label-map",
                                     "entailment=entailment,not_entailment=contradiction"))
    assert res.exit_code == 0, res.output
    path, rec = written(results, nli["two"])
    assert rec["model"]["labels"]["never_predicted"] == ["neutral"]
    assert "labels_never_predicted:neutral" in rec["flags"]
    assert 1 not in set(load_predictions(path)["pred"])               # neutral is never predicted

    bad = cli.invoke(app, _eval_args(nli["two"], shared_data, results, "--label-map", "LABEL_7=neutral"))
    assert bad.exit_code == 2 and "does not have" in bad.output


@pytest.fixture(scope="module")
def readers(tmp_path_factory, spm_model):
    """A SQuAD-style reader, and an encoder whose config.json claims a QA head its weights do not have."""
    root = tmp_path_factory.mktemp("readers")
    qa = factories.tiny_checkpoint(root / "qa", spread(factories.DEBERTA_V3), spm_model, head="qa")
    headless = factories.tiny_checkpoint(root / "headless", factories.DEBERTA_V3, spm_model, head="base")
    config = json.loads((headless / "config.json").read_text())
    (headless / "config.json").write_text(json.dumps({**config, "architectures": ["DebertaV2ForQuestionAnswering"]}))
    mlm = factories.tiny_checkpoint(root / "mlm", factories.DEBERTA_V3, spm_model, head="mlm")
    config = json.loads((mlm / "config.json").read_text())
    (mlm / "config.json").write_text(json.dumps({**config, "architectures": ["DebertaV2ForSequenceClassification"],
                                                 "id2label": dict(enumerate(NLI))}))
    # a sentence classifier whose labels are PAN-X's tags: its classifier has a tagger's shape
    sentence = factories.tiny_checkpoint(root / "sentence", factories.DEBERTA_V3, spm_model, labels=PANX)
    return {"qa": qa, "headless": headless, "mlm_as_classifier": mlm, "sentence_tagger": sentence}


def test_a_qa_checkpoint_is_evaluated_and_one_without_a_qa_head_is_refused(readers, nli, shared_data, tmp_path):
    """Would catch: a QA task evaluated with a random qa_outputs (a checkpoint without a QA head given a fresh
    one), a sequence classifier used as a span extractor or as a tagger (its classifier has a tagger's shape,
    so only config.json's architectures tell), a classifier without a trained head; the SQuAD metrics
    recomputable from the record."""
    results = tmp_path / "results"
    res = cli.invoke(app, _eval_args(readers["qa"], shared_data, results, task="xquad", languages="en,es"))
    assert res.exit_code == 0, res.output
    [path], [rec] = load_records(results).paths, load_records(results).records
    assert sorted(rec["metrics"]["validation"]) == ["en", "es"] and rec["selection"] is None
    assert rec["data"].get("train") is None                           # no SQuAD train split needed, or read
    assert rec["model"].get("labels") is None
    assert metrics_from_predictions(load_predictions(path), ["f1", "exact_match"],
                                    get_task("xquad").task_type) == rec["metrics"]

    res = cli.invoke(app, _eval_args(nli["ref"], shared_data, results, task="xquad", languages="en"))
    assert res.exit_code == 2
    assert "is a DebertaV2ForSequenceClassification, but task 'xquad' needs a *ForQuestionAnswering head" in \
        " ".join(res.output.split())
    res = cli.invoke(app, _eval_args(readers["sentence_tagger"], shared_data, results, task="panx", languages="en"))
    assert res.exit_code == 2
    assert "is a DebertaV2ForSequenceClassification, but task 'panx' needs a *ForTokenClassification head" in \
        " ".join(res.output.split())
    for impl in ("native", "hf"):
        res = cli.invoke(app, _eval_args(readers["headless"], shared_data, results, "--impl", impl, task="xquad",
                                         languages="en"))
        assert res.exit_code == 2, res.output
        text = " ".join(res.output.split())
        assert "has no trained *ForQuestionAnswering head" in text and "qa_outputs.weight" in text
        res = cli.invoke(app, _eval_args(readers["mlm_as_classifier"], shared_data, results, "--impl", impl))
        assert res.exit_code == 2 and "has no trained *ForSequenceClassification head" in " ".join(res.output.split())
    assert len(load_records(results).records) == 1                    # refusals write nothing


@pytest.mark.parametrize("fixture", ["tiny_deberta_v3", "tiny_xlmr"])
def test_a_saved_run_model_evaluated_by_its_run_id_gives_the_runs_numbers(fixture, request, shared_data,
                                                                         tmp_path):
    """Would catch: --save-model writing a model other than the selected one, without the task's id2label, or
    not transformers-loadable; `xlt eval --model <run_id>` not finding it, or evaluating it other than the run
    did (its max_seq_len); `xlt report show` not saying where the model is."""
    from transformers import AutoConfig

    results = tmp_path / "results"
    run = cli.invoke(app, ["run", "--model", str(request.getfixturevalue(fixture)), "--task", "xnli", "--data-dir",
                           str(shared_data), "--results-dir", str(results), "--max-train-samples", "48",
                           "--max-eval-samples", "40", "--epochs", "1", "--batch-size", "16", "--lr", "5e-3",
                           "--max-seq-len", "40", "--languages", "en,fr", "--save-model", "--name", "tiny"])
    assert run.exit_code == 0, run.output
    [run_path], [run_rec] = load_records(results).paths, load_records(results).records
    saved = run_rec["saved_model"]
    folder = results / saved["path"]
    assert saved["path"] == f"models/xnli/{run_path.parent.name}/{run_rec['run_id']}"
    assert saved["bytes"] == sum(p.stat().st_size for p in folder.iterdir()) and saved["bytes"] > 0
    config = AutoConfig.from_pretrained(folder)
    assert [config.id2label[i] for i in range(3)] == NLI
    assert "saved model" in run.output

    res = cli.invoke(app, ["eval", "--model", run_rec["run_id"][:8], "--task", "xnli", "--data-dir",
                           str(shared_data), "--results-dir", str(results), "--max-eval-samples", "40",
                           "--languages", "en,fr"])
    assert res.exit_code == 0, res.output
    evals = [(p, r) for p, r in zip(load_records(results).paths, load_records(results).records)
             if r["spec"]["protocol"] == "evaluate"]
    [(eval_path, eval_rec)] = evals
    assert eval_rec["metrics"] == run_rec["metrics"]
    assert load_predictions(eval_path)["pred"].tolist() == load_predictions(run_path)["pred"].tolist()
    assert eval_rec["spec"]["hparams"]["max_seq_len"] == 40            # the run's, not the task's 128
    assert eval_rec["model"]["display_name"] == "tiny-xnli"
    assert "tiny-xnli (evaluated)" in res.output

    show = cli.invoke(app, ["report", "show", run_rec["run_id"], "--results-dir", str(results)])
    assert show.exit_code == 0
    text = "".join(show.output.split())                               # rich wraps the long path
    assert f"savedmodel{folder}({saved['bytes'] / 1e6:,.1f}MB)".replace(" ", "") in text


def test_evaluated_rows_are_their_own_and_compare_with_significance(nli, shared_data, tmp_path):
    """Would catch: an evaluate-only record averaged with fine-tuned seeds of the same name, labelled like them,
    or chosen as the baseline in their place; its significance against another row must work as for runs."""
    from xlt.report import build_table

    results = tmp_path / "results"
    spec = build_spec(str(nli["ref"]), get_task("xnli"), protocol="evaluate", data_dir=shared_data,
                      languages=["en", "fr"], max_eval_samples=200)
    assert runner.run(spec, data_dir=shared_data, results_dir=results, display_name="m").ok
    spec = build_spec(str(nli["ref"]), get_task("xnli"), data_dir=shared_data, languages=["en", "fr"],
                      max_eval_samples=200, max_train_samples=16, overrides={"epochs": 1, "max_seq_len": 40,
                                                                             "batch_size": 16})
    assert runner.run(spec, data_dir=shared_data, results_dir=results, display_name="m").ok
    table = build_table("xnli", load_records(results), baseline="m", split="validation", reference=False,
                        n_resamples=200)
    rows = {r.model: r for r in table.rows}
    assert set(rows) == {"m", "m (evaluated)"}
    assert rows["m"].seeds == 1 and rows["m (evaluated)"].seeds == 1   # never one row of two "seeds"
    [delta] = table.deltas                                             # against the fine-tuned row
    assert delta.model == "m (evaluated)" and set(delta.significance) >= {"en", "fr"}


def test_eval_options_split_dry_run_and_what_does_not_apply(nli, shared_data, tmp_path):
    """Would catch: --split not reaching the spec (a validation-only evaluation filed as the full one), a dry run
    that loads weights or hides the label match, training hyperparameters accepted as if they did something,
    or a registry (pretrained) model evaluated with a random head."""
    results = tmp_path / "results"
    plan = cli.invoke(app, _eval_args(nli["permuted"], shared_data, results, "--dry-run", "--json"))
    assert plan.exit_code == 0, plan.output
    plan = json.loads(plan.stdout)
    assert plan["spec"]["protocol"] == "evaluate" and set(plan["hparams_from"]) == {"max_seq_len", "window_step",
                                                                                     "eval_batch_size"}
    assert plan["labels"]["map"]["contradiction"] == "CONTRADICTORY" and load_records(results).records == []

    res = cli.invoke(app, _eval_args(nli["ref"], shared_data, results, "--split", "validation", "-q"))
    assert res.exit_code == 0, res.output
    [rec] = load_records(results).records
    assert rec["spec"]["splits"] == ["validation"] and rec["data"]["evaluated"] == ["validation"]
    assert rec["data"]["skipped"] == {} and not any(f.startswith("split_not_evaluated") for f in rec["flags"])
    res = cli.invoke(app, _eval_args(nli["ref"], shared_data, results, "--split", "test"))
    assert res.exit_code != 0 and "test" in res.output
    bad = cli.invoke(app, _eval_args(nli["ref"], shared_data, results, "--split", "dev"))
    assert bad.exit_code == 2 and "its evaluation splits: test, validation" in " ".join(bad.output.split())
    bad = cli.invoke(app, _eval_args(nli["ref"], shared_data, results, "--set", "lr=1e-5"))
    assert bad.exit_code == 2 and "does not apply to xlt eval" in bad.output
    bad = cli.invoke(app, _eval_args("mdeberta-v3-base", shared_data, results))
    assert bad.exit_code == 2 and "pretrained encoder" in bad.output
