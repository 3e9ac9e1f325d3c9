"""Transfer protocols (issue 25): what each trains on, selects on and predicts, on small local files made from
the real XNLI files in ../shared/data, with a tiny checkpoint.

The data: English, French and German XNLI validation pairs are parallel (the same row is the same pair in every
language). Rows 0-39 of each are that language's validation split, rows 40-79 its test split, rows 100-131 of the
French and German files stand in for their translated train splits, and the English rows 40-79 are the "English
translation" of the French and German test splits (translate-test/test-<lang>.tsv): row by row the same pairs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests import factories
from xlt import runner
from xlt.errors import XltError
from xlt.protocols import (FEW_SHOT, ORIGINAL, TRANSLATE_TEST, TRANSLATE_TRAIN, DataRef, Layout, plan_models,
                           shot_rows)

LANGS = "en,de,fr"
HP = dict(epochs=1, batch_size=16, max_seq_len=32, lr=5e-3, eval_every=2)


def _read(path):
    return pd.read_csv(path, sep="\t", quoting=3, dtype=str, keep_default_na=False)


def _write(frame, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep="\t", index=False, quoting=3)


@pytest.fixture()
def data(tmp_path, shared_data):
    root = tmp_path / "data"
    xnli = root / "xnli"
    _write(_read(shared_data / "xnli" / "train-en.tsv").iloc[:64], xnli / "train-en.tsv")
    english = _read(shared_data / "xnli" / "validation-en.tsv")
    for lang in ("en", "fr", "de"):
        rows = _read(shared_data / "xnli" / f"validation-{lang}.tsv")
        _write(rows.iloc[:40], xnli / f"validation-{lang}.tsv")
        _write(rows.iloc[40:80], xnli / f"test-{lang}.tsv")
        if lang != "en":
            _write(rows.iloc[100:132], xnli / f"train-{lang}.tsv")
            _write(english.iloc[40:80], xnli / "translate-test" / f"test-{lang}.tsv")
    return root


def spec_for(model, data, protocol, shots=None, seed=1, **fields):
    from xlt.recipes import build_spec
    from xlt.tasks import get_task

    return build_spec(str(model), get_task("xnli"), seed, overrides=HP, data_dir=data, languages=LANGS,
                      protocol=protocol, shots=shots, **fields)


def read_only(model, data, protocol, shots=None, seed=1):
    """The set-up-free part of a run: what read_data gives each model."""
    from xlt.tasks import get_task

    spec = spec_for(model, data, protocol, shots, seed)
    st = runner.RunState(spec=spec, emit=lambda e: None, data_dir=data)
    st.task, st.ddir = get_task("xnli"), data
    runner.read_data(st)
    return st


class FitSpy:
    """Records, for every model a run trains, the examples of its training set (index per row, epoch 0) and
    the weights it starts from, then trains as usual."""

    def __init__(self, monkeypatch):
        from xlt import train as xtrain

        self.calls, real = [], xtrain.fit

        def fit(model, batches, n, hp, **kw):
            rows = np.concatenate([b["index"].numpy() for b in batches(0)])
            start = {k: v.detach().clone() for k, v in model.state_dict().items()}
            result = real(model, batches, n, hp, **kw)
            self.calls.append({"index": rows, "hp": hp, "start": start, "result": result,
                               "selects": kw.get("dev_eval") is not None})
            return result

        monkeypatch.setattr(xtrain, "fit", fit)


def completed(out):
    assert out.record["status"] == "completed", out.record["error"]
    return out.record


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------------------------------
# Plans (no data, no model)


LAYOUT = Layout("en", "train", "validation", ("test", "validation"), ("en", "fr", "de"), shot_split="validation",
                shots=4)


def test_each_protocol_plans_its_models_their_data_and_what_each_predicts():
    """Catches a protocol training on the wrong parts, selecting on another language's dev split, predicting a
    language with the wrong model, or few-shot evaluating the split its shots come from."""
    everything = lambda ref: True   # noqa: E731

    def plan(name):
        return {m.key: m for m in plan_models(name, LAYOUT, everything).models}

    zero = plan("zero-shot")
    assert list(zero) == ["en"] and zero["en"].train == (DataRef("train", "en"),)
    assert zero["en"].select == DataRef("validation", "en") and len(zero["en"].predicts) == 6

    tta = plan("translate-train-all")["all"]
    assert tta.train == (DataRef("train", "en"), DataRef("train", "fr", TRANSLATE_TRAIN),
                         DataRef("train", "de", TRANSLATE_TRAIN))
    assert tta.select == DataRef("validation", "en") and tta.languages == ["en", "fr", "de"]

    tt = plan("translate-train")
    assert list(tt) == ["en", "fr", "de"]
    for lang, model in tt.items():
        kind = ORIGINAL if lang == "en" else TRANSLATE_TRAIN
        assert model.train == (DataRef("train", lang, kind),) and model.select == DataRef("validation", lang)
        assert model.languages == [lang] and model.start is None

    test = plan("translate-test")["en"]
    assert [str(r) for r in test.predicts] == ["test/en", "validation/en", "test/fr (translate-test)",
                                               "validation/fr (translate-test)", "test/de (translate-test)",
                                               "validation/de (translate-test)"]

    few = plan("few-shot")
    assert list(few) == ["en", "fr", "de"] and few["en"].start is None and few["en"].shots is None
    for lang in ("fr", "de"):
        assert few[lang].start == "en" and few[lang].shots == 4 and few[lang].select is None
        assert few[lang].train == (DataRef("validation", lang, FEW_SHOT),)
        assert few[lang].predicts == (DataRef("test", lang),)   # never the split the shots come from


def test_one_registry_lists_every_protocol_and_whether_it_trains():
    """Catches a second list of protocols drifting from the registry (a spec accepting a protocol no plan
    knows, or `xlt eval`'s records treated as fine-tuned), and evaluate planned with training data."""
    from xlt.protocols import PROTOCOLS as REGISTRY
    from xlt.spec import EVALUATE_ONLY, PROTOCOLS, RunSpec

    assert PROTOCOLS == tuple(REGISTRY) == ("zero-shot", "translate-train-all", "translate-train", "translate-test",
                                            "few-shot", "evaluate")
    assert {name for name, p in REGISTRY.items() if not p.trains} == set(EVALUATE_ONLY) == {"evaluate"}
    assert EVALUATE_ONLY["evaluate"] == "evaluated"
    assert [RunSpec("m", "xnli", protocol=p, shots=4 if p == "few-shot" else None).fine_tunes
            for p in PROTOCOLS] == [REGISTRY[p].trains for p in PROTOCOLS]
    [model] = plan_models("evaluate", LAYOUT, lambda ref: True).models
    assert model.train == () and model.select is None and model.languages == ["en", "fr", "de"]
    with pytest.raises(XltError, match="shown with zero-shot's"):
        from xlt.report.summary import build_summary
        build_summary("unused", ["xnli"], reference=False, records=None, protocol="evaluate")


def test_a_language_without_its_data_is_left_out_and_named():
    """Catches a missing translation silently training or evaluating with something else."""
    no_german = lambda ref: not (ref.lang == "de" and ref.kind != ORIGINAL)   # noqa: E731
    tt = plan_models("translate-train", LAYOUT, no_german)
    assert [m.key for m in tt.models] == ["en", "fr"] and tt.missing == {"de": ["train/de (translate-train)"]}
    tta = plan_models("translate-train-all", LAYOUT, no_german)
    assert [r.lang for r in tta.models[0].train] == ["en", "fr"] and tta.models[0].languages == ["en", "fr", "de"]
    test = plan_models("translate-test", LAYOUT, no_german)
    assert "de" not in test.models[0].languages
    assert test.missing == {"de": ["test/de (translate-test)", "validation/de (translate-test)"]}
    only_validation = Layout(**{**LAYOUT.__dict__, "eval_splits": ("validation",)})
    few = plan_models("few-shot", only_validation, lambda ref: True)
    assert [m.key for m in few.models] == ["en"] and set(few.missing) == {"fr", "de"}


def test_shots_are_drawn_by_seed_and_language():
    """Catches a draw that ignores the seed (every seed the same shots) or the language."""
    a, b, c = shot_rows(100, 10, 1, "fr"), shot_rows(100, 10, 2, "fr"), shot_rows(100, 10, 1, "de")
    assert len(set(a)) == 10 and a == sorted(a) and all(0 <= i < 100 for i in a)
    assert a == shot_rows(100, 10, 1, "fr") and a != b and a != c
    with pytest.raises(XltError, match="more than the 5 examples"):
        shot_rows(5, 10, 1, "fr")


def test_shots_take_every_count_from_one_to_the_cap_and_no_other():
    """Catches the range check's bounds moved (1 or MAX_SHOTS refused, 0 or MAX_SHOTS + 1 accepted), its `or`
    turned into `and`, and drawing every example of a language (shots == n) refused."""
    from xlt.protocols import MAX_SHOTS, check_shots

    for ok in (1, 2, MAX_SHOTS):
        check_shots(FEW_SHOT, ok)
    for bad in (0, -1, MAX_SHOTS + 1, True, 2.0, "4"):
        with pytest.raises(XltError, match="must be an integer from 1"):
            check_shots(FEW_SHOT, bad)
    assert shot_rows(5, 5, 1, "fr") == [0, 1, 2, 3, 4]


def test_few_shot_skips_only_its_shot_split_and_keeps_a_source_model_without_predictions():
    """Catches `continue` turned into `break` (a split listed after the shots' split never evaluated) and the
    pruning of models with nothing to evaluate reaching the source model, which the targets start from."""
    shots_first = Layout("en", "train", "validation", ("validation", "test"), ("en", "fr"),
                         shot_split="validation", shots=4)
    few = {m.key: m for m in plan_models("few-shot", shots_first, lambda ref: True).models}
    assert few["fr"].predicts == (DataRef("test", "fr"),)
    assert few["en"].predicts == (DataRef("validation", "en"), DataRef("test", "en"))
    no_source_eval = lambda ref: not (ref.lang == "en" and ref.split in ("test", "validation")  # noqa: E731
                                      and ref.kind == ORIGINAL)
    only_test = Layout(**{**shots_first.__dict__, "eval_splits": ("test",), "shot_split": "train"})
    plan = plan_models("few-shot", only_test, lambda ref: no_source_eval(ref) or ref.split == "validation")
    assert [m.key for m in plan.models] == ["en", "fr"] and plan.models[0].predicts == ()


# --------------------------------------------------------------------------------------------------
# Task files and identities


def test_the_protocols_block_is_checked_key_by_key_with_lines(tmp_path):
    from xlt.tasks import check_task_file
    from xlt.paths import builtin_tasks_dir as tasks_dir

    text = (tasks_dir() / "xnli.yaml").read_text()
    head = text[:text.index("protocols:")]
    bad = head + "protocols:\n  translate-train: {languages: [en, yo]}\n  translate-all: {}\n" \
                 "  few-shot: {split: ../x, shots: 3}\n"
    (tmp_path / "xnli.yaml").write_text(bad)
    spec, problems = check_task_file(tmp_path / "xnli.yaml")
    assert spec is None and len(problems) == 5, problems
    line = head.count("\n") + 1   # the line of `protocols:`
    messages = " | ".join(p.message for p in problems)
    for expected in ("names 'en', which is not a target", "names 'yo', which is not a target",
                     "unknown key 'protocols.translate-all'", "split '../x' is not a valid name",
                     "unknown key 'protocols.few-shot.shots'"):
        assert expected in messages
    assert all(p.line is not None and p.line > line for p in problems)


def test_a_protocol_needs_its_data_declared_and_a_label_to_keep(tmp_path):
    """Catches translate-train run on a task whose target train splits are not translations (PAN-X's are real
    data), and translate-test on a type whose gold a translation moves."""
    from xlt.paths import builtin_tasks_dir as tasks_dir
    from xlt.recipes import build_spec
    from xlt.tasks import get_task

    with pytest.raises(XltError, match="task 'panx' declares no translate-train data.*protocols: translate-train:"):
        build_spec("xlm-roberta-base", get_task("panx"), protocol="translate-train-all")
    qa = (tasks_dir() / "xquad.yaml").read_text() + "protocols:\n  translate-test: {}\n"
    (tmp_path / "xquad.yaml").write_text(qa)
    with pytest.raises(XltError, match="translate-test keeps each example's original gold label"):
        build_spec("xlm-roberta-base", get_task(tmp_path / "xquad.yaml"), protocol="translate-test")


def test_zero_shot_run_ids_ignore_the_protocols_block_and_others_cover_it(tmp_path, data, tiny_deberta_v3):
    """Catches a protocols block that changes every zero-shot run id of a task (records shown as stale) and a
    protocol run whose id does not follow the block it reads."""
    from xlt.paths import builtin_tasks_dir as tasks_dir
    from xlt.recipes import build_spec
    from xlt.tasks import get_task
    from xlt.tasks.protocol_data import task_revision

    text = (tasks_dir() / "xnli.yaml").read_text()
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "xnli.yaml").write_text(text[:text.index("# The data of the protocols")])
    plain, real = get_task(tmp_path / "plain" / "xnli.yaml"), get_task("xnli")
    assert plain.protocols == () and plain.fingerprint == real.fingerprint
    ids = [build_spec(str(tiny_deberta_v3), t, overrides=HP, data_dir=data, languages=LANGS).run_id
           for t in (plain, real)]
    assert ids[0] == ids[1]
    assert task_revision(real, "translate-train") != real.fingerprint
    assert task_revision(real, "translate-train") != task_revision(real, "translate-test")


def test_the_data_revision_covers_every_file_a_protocol_reads(data, tiny_deberta_v3):
    """Catches a translated file left out of the run's data identity: changing it would find the old record."""
    def revisions():
        return {p: spec_for(tiny_deberta_v3, data, p, shots=3 if p == "few-shot" else None).data_revision
                for p in ("zero-shot", "translate-train", "translate-train-all", "translate-test", "few-shot")}

    before = revisions()
    frame = _read(data / "xnli" / "train-fr.tsv")
    frame.loc[0, "premise"] = "changed"
    _write(frame, data / "xnli" / "train-fr.tsv")
    after = revisions()
    changed = {p for p in before if before[p] != after[p]}
    assert changed == {"translate-train", "translate-train-all"}
    frame = _read(data / "xnli" / "translate-test" / "test-de.tsv")
    frame.loc[3, "hypothesis"] = "changed"
    _write(frame, data / "xnli" / "translate-test" / "test-de.tsv")
    assert {p for p, rev in revisions().items() if rev != after[p]} == {"translate-test"}


# --------------------------------------------------------------------------------------------------
# Runs


def test_translate_train_all_trains_one_model_on_the_source_and_every_translation(data, tiny_deberta_v3,
                                                                                  monkeypatch):
    """Catches a translation left out of the mix, a part read twice, a part's rows lost when mixing (index
    clashes), or selection on anything but the English dev split."""
    spy = FitSpy(monkeypatch)
    out = runner.execute(spec_for(tiny_deberta_v3, data, "translate-train-all"), data_dir=data)
    rec = completed(out)
    assert len(spy.calls) == 1
    assert sorted(spy.calls[0]["index"]) == list(range(64 + 32 + 32))   # every example of every part, once
    model = rec["protocol"]["models"]["all"]
    assert [(p["lang"], p["kind"], p["n"], p["origin"].rsplit("/", 1)[1]) for p in model["train"]] == [
        ("en", "original", 64, "train-en.tsv"), ("fr", "translate-train", 32, "train-fr.tsv"),
        ("de", "translate-train", 32, "train-de.tsv")]
    assert model["selected_on"]["lang"] == "en" and rec["selection"]["criterion"] == "validation/en/accuracy"
    assert rec["protocol"]["model_of"] == {"en": "all", "fr": "all", "de": "all"}
    assert set(rec["metrics"]["test"]) == {"en", "fr", "de"} and rec["spec"]["protocol"] == "translate-train-all"


def test_translate_train_trains_one_model_per_language_selected_on_its_own_dev(data, tiny_deberta_v3,
                                                                               monkeypatch):
    """Catches one model trained on every language, a target model selected on the English dev split (or
    fed English training data), and a language's numbers produced by another language's model."""
    from xlt import evaluate as xeval

    seen, real = [], xeval.predict

    def predict(model, feats, **kw):
        seen.append((len(spy.calls), kw.get("inference", True), feats.meta["split"], feats.meta["lang"]))
        return real(model, feats, **kw)

    spy = FitSpy(monkeypatch)
    monkeypatch.setattr(xeval, "predict", predict)
    rec = completed(runner.execute(spec_for(tiny_deberta_v3, data, "translate-train"), data_dir=data))
    models = rec["protocol"]["models"]
    assert list(models) == ["en", "fr", "de"] and len(spy.calls) == 3
    assert [len(c["index"]) for c in spy.calls] == [64, 32, 32] and all(c["selects"] for c in spy.calls)
    for i, lang in enumerate(["en", "fr", "de"]):
        assert models[lang]["train"][0]["origin"].endswith(f"train-{lang}.tsv")
        assert models[lang]["selection"]["criterion"] == f"validation/{lang}/accuracy"
        during = {(s, l) for n, inference, s, l in seen if n == i and not inference}   # dev scores while training
        after = {(s, l) for n, inference, s, l in seen if n == i + 1 and inference}     # its evaluation
        assert during == {("validation", lang)} and after == {("test", lang), ("validation", lang)}
    assert rec["protocol"]["model_of"] == {"en": "en", "fr": "fr", "de": "de"}
    assert rec["selection"]["criterion"] == "validation/en/accuracy"   # the source model's


def test_translate_test_predictions_line_up_with_the_original_gold_labels(data, tiny_deberta_v3, monkeypatch):
    """Catches translations predicted with their own (or shuffled) labels, or the original text predicted instead
    of its translation: the French test split's translation is the English test rows, so the model must be fed
    the English test split's tokens and its numbers must be the English test split's exactly."""
    from xlt import evaluate as xeval

    fed, real = {}, xeval.predict

    def predict(model, feats, **kw):
        fed[(feats.meta["split"], feats.meta["lang"])] = feats.tokens["input_ids"].copy()
        return real(model, feats, **kw)

    monkeypatch.setattr(xeval, "predict", predict)
    out = runner.execute(spec_for(tiny_deberta_v3, data, "translate-test"), data_dir=data)
    rec = completed(out)
    preds = out.predictions
    for lang in ("fr", "de"):
        rows = preds[(preds.split == "test") & (preds.lang == lang)]
        gold = _read(data / "xnli" / f"test-{lang}.tsv")["label"].astype(int).tolist()
        assert rows["idx"].tolist() == list(range(40)) and rows["label"].tolist() == gold
        assert np.array_equal(fed[("test", lang)], fed[("test", "en")])   # the translation's text, not the original
        english = preds[(preds.split == "test") & (preds.lang == "en")]
        assert rows["pred"].tolist() == english["pred"].tolist()
        assert rec["metrics"]["test"][lang] == rec["metrics"]["test"]["en"]
        assert "validation" not in rec["metrics"] or lang not in rec["metrics"]["validation"]
    assert rec["protocol"]["missing"] == {"fr": ["validation/fr (translate-test)"],
                                          "de": ["validation/de (translate-test)"]}
    assert "protocol_data_missing:fr,de" in rec["flags"]


def test_a_translation_out_of_step_with_its_original_is_refused(data, tiny_deberta_v3):
    """Catches a translate-test file whose rows are shuffled being scored against the original's labels."""
    path = data / "xnli" / "translate-test" / "test-fr.tsv"
    _write(_read(path).sample(frac=1, random_state=0), path)
    rec = runner.execute(spec_for(tiny_deberta_v3, data, "translate-test"), data_dir=data).record
    assert rec["status"] == "failed" and rec["error"]["stage"] == "setup"
    assert "the translation is not row by row the original's examples" in rec["error"]["message"]
    _write(_read(path).iloc[:39], path)
    with pytest.raises(XltError, match="has 39 rows, the original 40"):
        read_only(tiny_deberta_v3, data, "translate-test")


def test_few_shot_draws_by_seed_from_a_split_it_never_evaluates(data, tiny_deberta_v3):
    """Catches shots that do not depend on the seed, shots from the evaluated split, and a record that does not
    say which examples were drawn."""
    one, two = read_only(tiny_deberta_v3, data, "few-shot", shots=6, seed=1), \
        read_only(tiny_deberta_v3, data, "few-shot", shots=6, seed=2)
    for lang in ("fr", "de"):
        drawn = one.models.drawn[lang]
        assert drawn["split"] == "validation" and len(drawn["rows"]) == 6
        assert drawn["rows"] != two.models.drawn[lang]["rows"]
        pool = _read(data / "xnli" / f"validation-{lang}.tsv")
        shots = one.models.parts[lang][0].frame
        assert shots["text_a"].tolist() == pool["premise"].iloc[drawn["rows"]].tolist()
        assert ("validation", lang) not in one.eval_data and ("test", lang) in one.eval_data
    assert ("validation", "en") in one.eval_data


def test_few_shot_continues_the_selected_source_model_with_the_fixed_recipe(data, tiny_deberta_v3, monkeypatch):
    """Catches a target model started from the checkpoint (or from another target's model), trained with the
    run's recipe instead of the few-shot one, or selected on a dev split it does not have."""
    from xlt.protocols import FEW_SHOT_RECIPE

    spy = FitSpy(monkeypatch)
    rec = completed(runner.execute(spec_for(tiny_deberta_v3, data, "few-shot", shots=5), data_dir=data))
    source, fr, de = spy.calls
    best = source["result"].best_state
    for target in (fr, de):
        assert all(np.array_equal(target["start"][k].numpy(), best[k].numpy()) for k in best)
        assert len(target["index"]) == 5 and not target["selects"]
        assert target["hp"].epochs == FEW_SHOT_RECIPE["epochs"] and target["hp"].batch_size == 5
        assert target["hp"].lr == source["hp"].lr and target["hp"].warmup_steps == 0
    assert rec["protocol"]["drawn"]["fr"]["rows"] == sorted(rec["protocol"]["drawn"]["fr"]["rows"])
    assert rec["protocol"]["models"]["fr"]["continues"] == "en"
    assert rec["protocol"]["models"]["fr"]["selection"]["criterion"].startswith("none")
    assert set(rec["metrics"]["validation"]) == {"en"} and set(rec["metrics"]["test"]) == {"en", "fr", "de"}


def test_save_model_is_refused_for_a_protocol_of_several_models(data, tiny_deberta_v3, tmp_path):
    """Catches --save-model keeping one language's model of translate-train as if it were the run's."""
    out = runner.execute(spec_for(tiny_deberta_v3, data, "translate-train"), data_dir=data,
                         results_dir=tmp_path / "results", save_model=True)
    assert out.record["status"] == "failed" and out.record["error"]["stage"] == "setup"
    assert "--save-model keeps a run's one model, but protocol translate-train trains 3 (en, fr, de)" in \
        out.record["error"]["message"]


def test_a_missing_translation_leaves_its_language_out_and_says_so(data, tiny_deberta_v3):
    (data / "xnli" / "train-de.tsv").unlink()
    events = []
    rec = completed(runner.execute(spec_for(tiny_deberta_v3, data, "translate-train"), data_dir=data,
                                   progress=events.append))
    assert list(rec["protocol"]["models"]) == ["en", "fr"] and "de" not in rec["metrics"]["test"]
    assert rec["protocol"]["missing"] == {"de": ["train/de (translate-train)"]}
    assert "protocol_data_missing:de" in rec["flags"]
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert any("left out de: no train/de (translate-train)" in w and "train-<lang>.tsv" in w for w in warnings)


def test_mixing_keeps_every_row_of_every_part_and_batches_cover_each_once(data, tiny_deberta_v3):
    from xlt.data import batches
    from xlt.protocol_runs import mix

    st = read_only(tiny_deberta_v3, data, "translate-train-all")
    from xlt.models import load_model

    tok = load_model(str(tiny_deberta_v3), "classification", 3).tokenizer
    parts = [factories.featurize(p, tok, 32) for p in st.models.parts["all"]]
    mixed = mix(parts)
    assert len(mixed) == sum(len(p) for p in parts) and mixed.num_examples == 128
    for i, part in enumerate(parts):
        start = sum(len(p) for p in parts[:i])
        for row in (0, len(part) - 1):
            a, b = mixed.example(start + row), part.example(row)
            assert a["input_ids"] == b["input_ids"] and a["labels"] == b["labels"]
            assert a["index"] == b["index"] + start
    seen = np.concatenate([b["index"].numpy() for b in batches(mixed, 16, shuffle=True, seed=3)])
    assert sorted(seen) == list(range(128))


# --------------------------------------------------------------------------------------------------
# Reports and the command line


def _record(run_id, protocol, seed, accuracy, shots=None):
    spec = {"model": "m", "task": "xnli", "seed": seed, "protocol": protocol, "hparams": {},
            "data_revision": f"local-sha256:{protocol}"}   # each protocol reads other files
    if shots:
        spec["shots"] = shots
    return factories.as_written({
        "schema_version": 2, "run_id": run_id, "status": "completed", "spec": spec,
        "model": {"name": "m", "display_name": "m"},
        "task": {"name": "xnli", "type": "pair-classification", "languages": ["en", "fr"], "source_lang": "en",
                 "primary_metric": "accuracy", "metrics": ["accuracy"], "eval_splits": ["test"],
                 "label_names": ["a", "b", "c"]},
        "metrics": {"test": {"en": {"accuracy": accuracy, "n": 10}, "fr": {"accuracy": accuracy - 0.1, "n": 10}}},
        "created_at": "2025-01-01T00:00:00+00:00"})[0]


def test_reports_keep_protocols_apart():
    """Catches seeds of two protocols averaged into one row (or one summary score), a Δ taken across
    protocols, and rows of one model named apart by the data their protocols read."""
    from xlt.report import build_table, runs_table
    from xlt.report.summary import build_summary
    from xlt.results import Records

    records = [_record("a1", "zero-shot", 1, 0.5), _record("a2", "zero-shot", 2, 0.7),
               _record("b1", "translate-train-all", 1, 0.9), _record("c1", "few-shot", 1, 0.8, shots=10)]
    recs = Records(records, [Path(f"{r['run_id']}.json") for r in records])
    table = build_table("xnli", recs, reference=False, baseline="m")
    rows = [(r.model, r.protocol, r.label, r.seeds, round(r.cells["avg"].mean, 1)) for r in table.rows]
    assert rows == [("m", "zero-shot", "xlt, test", 2, 55.0),
                    ("m", "translate-train-all", "xlt, test, translate-train-all", 1, 85.0),
                    ("m", "few-shot (10 shots)", "xlt, test, few-shot (10 shots)", 1, 75.0)]
    assert table.deltas == []   # each protocol's only row is its own baseline
    assert all(r.cells["gap"].mean == pytest.approx(10.0) for r in table.rows)
    assert table.is_best(table.rows[0], "avg") is False   # alone in its protocol: nothing to be best among
    only = build_table("xnli", recs, reference=False, protocol="translate-train-all")
    assert [r.protocol for r in only.rows] == ["translate-train-all"]
    assert list(runs_table(recs)["protocol"]) == ["zero-shot", "zero-shot", "translate-train-all",
                                                  "few-shot (10 shots)"]
    summary = build_summary("unused", ["xnli"], reference=False, records=recs)
    assert [round(r.cells["xnli"].score, 1) for r in summary.rows] == [55.0]
    other = build_summary("unused", ["xnli"], reference=False, records=recs, protocol="translate-train-all")
    assert [round(r.cells["xnli"].score, 1) for r in other.rows] == [85.0]
    with pytest.raises(XltError, match="unknown protocol 'translate'"):
        build_summary("unused", ["xnli"], reference=False, records=recs, protocol="translate")


def test_the_command_line_takes_a_protocol_and_says_what_it_will_train(data, tiny_deberta_v3, tmp_path):
    from typer.testing import CliRunner

    from xlt.cli import app

    cli = CliRunner()
    base = ["run", "--model", str(tiny_deberta_v3), "--task", "xnli", "--data-dir", str(data), "--languages", LANGS]
    out = cli.invoke(app, [*base, "--protocol", "few-shot"])
    assert out.exit_code == 2 and "--protocol few-shot needs --shots K" in out.output
    out = cli.invoke(app, [*base, "--protocol", "translate-train", "--dry-run", "--json"])
    assert out.exit_code == 0, out.output
    plan = json.loads(out.output)
    assert plan["spec"]["protocol"] == "translate-train" and list(plan["models"]) == ["en", "fr", "de"]
    assert plan["models"]["fr"] == {"train": ["train/fr (translate-train)"], "selected_on": "validation/fr",
                                    "continues": None, "shots": None, "predicts": ["test/fr", "validation/fr"]}
    (tmp_path / "sweep.yaml").write_text(f"models: [{tiny_deberta_v3}]\ntasks: [xnli]\nseeds: [1, 2]\n"
                                         "languages: [en, de, fr]\nprotocol: few-shot\nshots: 8\n")
    from xlt.schedule import build_grid, load_sweep_file

    specs = build_grid(load_sweep_file(tmp_path / "sweep.yaml"), data_dir=data)
    assert [(s.protocol, s.shots, s.seed) for s in specs] == [("few-shot", 8, 1), ("few-shot", 8, 2)]
