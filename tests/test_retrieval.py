"""The `retrieval` type end to end: `xlt run` on Tatoeba (the shared LASER files) and on a small BUCC-format corpus
with tiny checkpoints, `xlt score` on both, the layer chosen per depth, and the encoder head equal on the native
DeBERTa and through transformers. The search and mining themselves are tested against XTREME's functions in
test_retrieval_search.py; the real encoder's accuracies in test_retrieval_real.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests import factories
from tests.test_retrieval_search import xtreme_bucc
from xlt.cli import app
from xlt.errors import XltError
from xlt.evaluate import metrics_from_predictions
from xlt.results import load_predictions
from xlt.tasks import get_task
from xlt.tasktypes import get_task_type

cli = CliRunner()
TT = get_task_type("retrieval")
SHARED = {"ar": 1000, "de": 1000, "fr": 1000, "sw": 390, "zh": 1000}   # ../shared/data/tatoeba


def run(*args):
    res = cli.invoke(app, ["run", *map(str, args)])
    return res


def record_of(results: Path, task: str) -> tuple[dict, pd.DataFrame]:
    (path,) = (results / "runs" / task).rglob("*.json")
    rec = json.loads(path.read_text())
    return rec, load_predictions(path, rec)


# --- Tatoeba --------------------------------------------------------------------------------------------------

def test_tatoeba_run_answers_every_sentence_and_recomputes_from_its_predictions(tiny_deberta_v3, shared_data,
                                                                                tmp_path, one_torch_thread):
    """`xlt run --task tatoeba` evaluates a checkpoint (here one fine-tuned for 3 labels: its classifier goes
    unused) without training: every sentence of the 5 shared languages queries the English side once, the
    record says why nothing trained, and every metric recomputes from the predictions file."""
    results = tmp_path / "results"
    res = run("--model", tiny_deberta_v3, "--task", "tatoeba", "--data-dir", shared_data, "--results-dir", results)
    assert res.exit_code == 0, res.output
    assert "no training: layer 2, mean pooling" in res.output and "eval: done, 5 split/languages" in res.output
    rec, preds = record_of(results, "tatoeba")
    assert rec["selection"] is None and rec["steps"]["train"].startswith("skipped: type retrieval does not train")
    assert rec["spec"]["hparams"]["layer"] == 2 and rec["spec"]["hparams"]["pooling"] == "mean"
    assert rec["spec"]["hparams"]["max_seq_len"] == 512 and rec["model"]["head"] == "encoder"
    assert rec["data"]["evaluated"] == ["test"] and len(rec["data"]["skipped"]["test"]) == 31
    assert {lang: m["n"] for lang, m in rec["metrics"]["test"].items()} == SHARED
    for lang, group in preds.groupby("lang"):
        n = SHARED[lang]
        assert sorted(group["idx"]) == list(range(n)) and (group["id"] == group["idx"].astype(str)).all()
        assert group["extracted"].all() and group["pred"].isin([str(i) for i in range(n)]).all()
        assert (group["label"] == group["id"]).all()                  # line i translates line i
    assert metrics_from_predictions(preds, ["accuracy"], TT) == rec["metrics"]
    caption = rec["task"]["metric_info"]["accuracy"]["caption"]
    assert "each sentence searches the English side" in caption


def test_a_saved_fine_tuned_checkpoint_is_evaluated_through_the_same_path(tiny_deberta_v3, shared_data, tmp_path,
                                                                           one_torch_thread):
    """A fine-tuned model saved as xlt saves one (transformers-loadable) is a plain --model: its own encoder
    weights are the ones embedded (the accuracy and the record's model revision change)."""
    import torch

    from xlt.models import load_model

    loaded = load_model(str(tiny_deberta_v3), "classification", 3)
    with torch.no_grad():
        for p in loaded.model.deberta.encoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    tuned = loaded.save(tmp_path / "tuned")
    results = tmp_path / "results"
    for model in (tiny_deberta_v3, tuned):
        res = run("--model", model, "--task", "tatoeba", "--data-dir", shared_data, "--results-dir", results,
                  "--languages", "sw", "--quiet")
        assert res.exit_code == 0, res.output
    recs = [json.loads(p.read_text()) for p in sorted((results / "runs" / "tatoeba").rglob("*.json"))]
    assert len({r["spec"]["model_revision"] for r in recs}) == 2
    assert len({r["metrics"]["test"]["sw"]["accuracy"] for r in recs}) == 2


def test_tatoeba_predictions_export_and_score_as_xtremes_index_files(tiny_deberta_v3, shared_data, tmp_path,
                                                                       one_torch_thread):
    """`xlt report show --export` writes XTREME's layout (one retrieved index per query line) and `xlt score`
    reads it back to the run's accuracy; a broken file is refused naming the line."""
    from xlt.scoring import export_run

    results = tmp_path / "results"
    assert run("--model", tiny_deberta_v3, "--task", "tatoeba", "--data-dir", shared_data, "--results-dir", results,
               "--languages", "de,sw", "--quiet").exit_code == 0
    rec, preds = record_of(results, "tatoeba")
    files = export_run(rec, preds, tmp_path / "export")
    assert sorted(p.name for p in files) == ["test-de.tsv", "test-sw.tsv"]
    lines = (tmp_path / "export" / "test-sw.tsv").read_text().splitlines()
    assert len(lines) == 390 and all(line.isdigit() for line in lines)
    for lang in ("de", "sw"):
        res = cli.invoke(app, ["score", "--task", "tatoeba", "--lang", lang, "--predictions",
                               str(tmp_path / "export" / f"test-{lang}.tsv"), "--data-dir", str(shared_data), "--json"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["metrics"] == rec["metrics"]["test"][lang]
    bad = tmp_path / "bad.tsv"
    bad.write_text("\n".join(lines[:-1] + ["390"]) + "\n")
    with pytest.raises(XltError, match=r"bad.tsv:390: '390' is not an index of the searched side \(0..389\)"):
        from xlt.scoring import score_file

        score_file("tatoeba", "sw", bad, data_dir=shared_data)
    bad.write_text("\n".join(lines[:10]) + "\n")
    with pytest.raises(XltError, match="has 10 lines for 390 queries"):
        score_file("tatoeba", "sw", bad, data_dir=shared_data)


def test_the_query_direction_is_a_task_option(tiny_deberta_v3, shared_data, tmp_path, one_torch_thread):
    """`queries: pivot` is XTREME's evaluate_retrieval.py (each English sentence searches the language's side):
    rows are the English sentences, and its caption says so."""
    text = Path(get_task("tatoeba").path).read_text().replace("queries: sentence", "queries: pivot") \
        .replace("\nname: tatoeba\n", "\nname: tatoeba-en-xx\n")
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "tatoeba-en-xx.yaml").write_text(text)
    results = tmp_path / "results"
    res = run("--model", tiny_deberta_v3, "--task", tmp_path / "tasks" / "tatoeba-en-xx.yaml", "--data-dir",
              shared_data, "--results-dir", results, "--languages", "sw", "--quiet")
    assert res.exit_code == 0, res.output
    rec, preds = record_of(results, "tatoeba-en-xx")
    assert "each English sentence searches the language's side" in rec["task"]["metric_info"]["accuracy"]["caption"]
    assert len(preds) == 390 and (preds["label"] == preds["id"]).all()


# --- BUCC -----------------------------------------------------------------------------------------------------

def bucc_corpus(folder: Path, split: str, seed: int, lang: str = "de", n_src: int = 60, n_tgt: int = 70,
                n_gold: int = 25) -> None:
    """XTREME's three files for one split, from real XNLI sentences: gold translations are the English
    sentence itself or a copy with words dropped (a tiny random encoder embeds equal texts equally, so some
    pairs are easy and some hard), the rest unrelated sentences; one source text on two lines."""
    rng = np.random.default_rng(seed)
    pool = [line.split("\t")[1] for line in (factories.SHARED_DATA / "xnli" / "train-en.tsv")
            .read_text(encoding="utf-8").splitlines()[1:3000]]
    pool = list(dict.fromkeys(pool))
    picked = rng.choice(len(pool), n_src + n_tgt, replace=False)
    src = [pool[i] for i in picked[:n_src]]
    tgt = [pool[i] for i in picked[n_src:]]
    si, ti = rng.choice(n_src, n_gold, replace=False), rng.choice(n_tgt, n_gold, replace=False)
    for k, (i, j) in enumerate(zip(si, ti)):
        words = tgt[j].split()
        src[i] = tgt[j] if k % 2 else " ".join(w for w in words if rng.random() > 0.3 * (k % 5) / 4) or words[0]
    src[1] = src[0] if 0 not in si and 1 not in si else src[1]
    ids_s = [f"{lang}-{split}-{i:06d}" for i in range(n_src)]
    ids_t = [f"en-{split}-{j:06d}" for j in range(n_tgt)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{lang}-en.{split}.{lang}").write_text("".join(f"{a}\t{b}\n" for a, b in zip(ids_s, src)))
    (folder / f"{lang}-en.{split}.en").write_text("".join(f"{a}\t{b}\n" for a, b in zip(ids_t, tgt)))
    (folder / f"{lang}-en.{split}.gold").write_text("".join(f"{ids_s[i]}\t{ids_t[j]}\n" for i, j in zip(si, ti)))


@pytest.fixture(scope="module")
def bucc_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bucc-data")
    bucc_corpus(root / "bucc2018", "dev", seed=1)
    bucc_corpus(root / "bucc2018", "test", seed=2)
    return root


def embeddings_by_text(model_dir, folder: Path, split: str) -> dict[str, np.ndarray]:
    """The tiny encoder's embedding of every text of a split (layer 2, mean), through the type's own path."""
    from xlt import data as xdata
    from xlt.evaluate import predict
    from xlt.models import load_model
    from xlt.tasks import load_split
    from xlt.tasktypes import retrieval_rows as R

    task = get_task("bucc2018")
    loaded = load_model(str(model_dir), "encoder", None, output_layer=2)
    split_data = load_split(task, split, "de", folder)
    feats = xdata.featurize(split_data, loaded.tokenizer, {"max_seq_len": 512, "pooling": "mean"}, task_type=TT,
                            use_cache=False)
    s_emb, p_emb = R.side_embeddings(feats, predict(loaded.model, feats, task_type=TT))
    sides = R.sides(split_data.frame)
    return {**dict(zip(sides.sentences, s_emb)), **dict(zip(sides.pivots, p_emb))}


def test_bucc_run_equals_xtreme_and_recomputes_from_its_mined_pairs(tiny_deberta_v3, bucc_dir, tmp_path,
                                                                    one_torch_thread):
    """`xlt run --task bucc2018` on XTREME's file layout: test is thresholded with dev's threshold (recorded,
    and recomputed from the dev rows of the predictions file), every figure recomputes from the predictions,
    and dev and test F1 equal XTREME's pipeline (mine_bitext, bucc_eval, bucc_extract, bucc_f1) run on the same
    embeddings. The exported pairs file scores the same with `xlt score`."""
    from xlt.scoring import export_run, score_file
    from xlt.tasktypes.retrieval_bucc import mined_correct
    from xlt.tasktypes.retrieval_search import choose_threshold

    results = tmp_path / "results"
    res = run("--model", tiny_deberta_v3, "--task", "bucc2018", "--data-dir", bucc_dir, "--results-dir", results,
              "--languages", "de")
    assert res.exit_code == 0, res.output
    assert "decided across splits: threshold_split \"dev\"" in res.output
    rec, preds = record_of(results, "bucc2018")
    threshold = rec["calibration"]["thresholds"]["de"]
    dev, test = (preds[preds["split"] == s].reset_index(drop=True) for s in ("dev", "test"))
    assert threshold == choose_threshold(*mined_correct(dev))
    assert (test["extracted"] == (test["score"] >= threshold)).all() and test["extracted"].any()
    assert len(dev) == len(test) == 60 and sorted(test["idx"]) == list(range(60))
    assert metrics_from_predictions(preds, ["f1", "precision", "recall"], TT) == rec["metrics"]
    assert 0 < rec["metrics"]["test"]["de"]["f1"] < 1

    folder = bucc_dir / "bucc2018"
    emb = {**embeddings_by_text(tiny_deberta_v3, bucc_dir, "dev"), **embeddings_by_text(tiny_deberta_v3, bucc_dir,
                                                                                         "test")}
    _, ref_dev, _ = xtreme_bucc(folder, "dev", emb)
    _, _, ref_test = xtreme_bucc(folder, "test", emb, threshold=ref_dev["best-threshold"])
    assert threshold == pytest.approx(ref_dev["best-threshold"], rel=1e-6)
    assert 100 * rec["metrics"]["dev"]["de"]["f1"] == pytest.approx(ref_dev["F1"], rel=1e-9)
    assert 100 * rec["metrics"]["test"]["de"]["f1"] == pytest.approx(ref_test["f1"], rel=1e-9)

    files = export_run(rec, preds, tmp_path / "export")
    pairs = (tmp_path / "export" / "test-de.tsv").read_text().splitlines()
    assert len(pairs) == int(test["extracted"].sum()) and all(line.count("\t") == 1 for line in pairs)
    assert {p.name for p in files} == {"test-de.tsv", "dev-de.tsv"}
    scored = score_file("bucc2018", "de", tmp_path / "export" / "test-de.tsv", split="test", data_dir=bucc_dir)
    assert scored.metrics == rec["metrics"]["test"]["de"]


def test_bucc_refusals_name_the_problem(tiny_deberta_v3, bucc_dir, tmp_path, one_torch_thread):
    """No --data-dir (no hub source holds BUCC), a missing part of a split, no dev split to threshold test on,
    an external pairs file pairing one sentence twice: each one message naming the fix."""
    from xlt.scoring import score_file

    res = run("--model", tiny_deberta_v3, "--task", "bucc2018", "--results-dir", tmp_path / "r", "--quiet")
    assert res.exit_code == 2 and "is read from local files only" in res.output and "--data-dir" in res.output
    partial = tmp_path / "partial"
    shutil.copytree(bucc_dir, partial)
    (partial / "bucc2018" / "de-en.dev.gold").unlink()
    res = run("--model", tiny_deberta_v3, "--task", "bucc2018", "--data-dir", partial, "--results-dir",
              tmp_path / "r", "--quiet", "--languages", "de")
    assert res.exit_code == 2 and "missing:" in res.output and "de-en.dev.gold" in res.output
    for name in ("de-en.dev.de", "de-en.dev.en"):
        (partial / "bucc2018" / name).unlink()
    res = run("--model", tiny_deberta_v3, "--task", "bucc2018", "--data-dir", partial, "--results-dir",
              tmp_path / "r", "--quiet", "--languages", "de")
    assert res.exit_code == 1 and "threshold of de is chosen on split 'dev', which was not evaluated" in res.output
    src = (bucc_dir / "bucc2018" / "de-en.test.de").read_text().splitlines()[0].split("\t")[0]
    twice = tmp_path / "twice.tsv"
    twice.write_text(f"{src}\ten-test-000001\n{src}\ten-test-000002\n")
    with pytest.raises(XltError, match=r"twice.tsv:2: .* is already paired with 'en-test-000001' \(line 1\)"):
        score_file("bucc2018", "de", twice, split="test", data_dir=bucc_dir)


def test_bucc_files_are_checked_when_read(bucc_dir, tmp_path):
    """A gold file giving one sentence two translations, a gold id absent from the corpus: refused with the
    file and line. The data identity covers all three files of a split."""
    from xlt.tasks import load_split
    from xlt.tasks.sources import plan_data

    folder = tmp_path / "d"
    shutil.copytree(bucc_dir, folder)
    task = get_task("bucc2018")
    before = plan_data(task, folder, ["de"]).revision
    gold = folder / "bucc2018" / "de-en.dev.gold"
    first = gold.read_text().splitlines()[0].split("\t")
    gold.write_text(gold.read_text() + f"{first[0]}\ten-dev-000069\n")
    assert plan_data(task, folder, ["de"]).revision != before
    with pytest.raises(XltError, match=r"de-en.dev.gold:26: .* already has the gold translation"):
        load_split(task, "dev", "de", folder)
    gold.write_text(f"{first[0]}\ten-dev-999999\n")
    with pytest.raises(XltError, match=r"id 'en-dev-999999' is not in"):
        load_split(task, "dev", "de", folder)


# --- the layer, pooling and the encoder head ----------------------------------------------------------------

@pytest.mark.parametrize("depth, layer", [(12, 8), (24, 14), (6, 5), (2, 2), (1, 1)])
def test_the_layer_defaults_to_xtremes_choice_for_the_models_depth(depth, layer):
    """run_tatoeba.sh: --specific_layer 7 of 12 layers and 13 of 24 on hidden_states[1:], i.e. hidden_states[8]
    and [14]: depth // 2 + 2, capped at the last layer; recorded in the spec with where it came from."""
    from xlt.recipes import effective_hparams

    config = {**factories.XLMR, "num_hidden_layers": depth}
    for task in ("tatoeba", "bucc2018"):
        hp, where = effective_hparams("m", get_task(task), config=config)
        assert hp.layer == layer and hp.pooling == "mean" and hp.max_seq_len == 512
        assert where["layer"].startswith("model rule: XTREME retrieval layer") and \
            f"num_hidden_layers: {depth}" in where["layer"]
    hp, _ = effective_hparams("m", get_task("xnli"), config=config)
    assert hp.layer is None                                   # no encoder head, no layer


def test_layer_and_pooling_overrides_are_checked():
    from xlt.recipes import effective_hparams
    from xlt.spec import check_hparams

    config = {**factories.XLMR, "num_hidden_layers": 12}
    hp, where = effective_hparams("m", get_task("tatoeba"), {"layer": "12", "pooling": "CLS"}, config=config)
    assert (hp.layer, hp.pooling, where["layer"]) == (12, "cls", "override")
    with pytest.raises(XltError, match=r"layer=13 does not exist in a 12-layer model"):
        effective_hparams("m", get_task("tatoeba"), {"layer": 13}, config=config)
    for bad, message in (({"pooling": "max"}, "not one of mean, cls"), ({"layer": -1}, "out of range"),
                         ({"layer": True}, "not a valid int"), ({"layer": "2.5"}, "not a valid int")):
        with pytest.raises(XltError, match=message):
            check_hparams(bad)
    assert check_hparams({"layer": "none"}) == {"layer": None}


def test_a_layer_cannot_be_chosen_without_the_models_config():
    from xlt.spec import Hyperparams

    with pytest.raises(XltError, match=r"no layer was chosen.*--set layer=N"):
        TT.head_options(get_task("tatoeba"), Hyperparams())


@pytest.mark.parametrize("layer", [1, 2])
def test_embeddings_are_equal_on_the_native_deberta_and_through_transformers(tiny_deberta_v3, shared_data, layer,
                                                                             one_torch_thread):
    """The encoder head returns hidden_states[layer] on both implementations (the native model stops there);
    mean and cls pooling of it agree to 1e-5 on real sentences of mixed lengths (padding inside batches)."""
    from xlt import data as xdata
    from xlt.evaluate import predict
    from xlt.models import load_model
    from xlt.tasks import load_split
    from xlt.tasktypes import retrieval_rows as R

    split = load_split(get_task("tatoeba"), "test", "de", shared_data).head(80)
    out = {}
    for impl in ("native", "hf"):
        loaded = load_model(str(tiny_deberta_v3), "encoder", None, impl=impl, output_layer=layer)
        assert loaded.impl == impl
        for pooling in ("mean", "cls"):
            feats = xdata.featurize(split, loaded.tokenizer, {"max_seq_len": 512, "pooling": pooling},
                                    task_type=TT, use_cache=False)
            out[impl, pooling] = np.concatenate(R.side_embeddings(feats, predict(loaded.model, feats, task_type=TT,
                                                                                 batch_size=16)))
    for pooling in ("mean", "cls"):
        assert out["native", pooling].shape == (160, 32)
        np.testing.assert_allclose(out["native", pooling], out["hf", pooling], atol=1e-5, rtol=0)
    assert not np.allclose(out["native", "mean"], out["native", "cls"])


# --- task files and options -----------------------------------------------------------------------------------

def write_task(tmp_path: Path, source: str, options: str = "{search: top1}") -> Path:
    path = tmp_path / "mine.yaml"
    path.write_text(f"name: mine\ntype: retrieval\nversion: 1\nsource_lang: en\nlanguages: [de]\n"
                    f"eval_splits: [test]\noptions: {options}\nsource:\n{source}")
    return path


@pytest.mark.parametrize("source, options, message", [
    ("  data_dir_files: {sentence: \"a.{lang}\", pivot: \"b.{lang}\"}\n", "{search: top1}", "needs a `format:`"),
    ("  format: lines\n  data_dir_files: {sentence: \"a.{lang}\", english: \"b.{lang}\"}\n", "{search: top1}",
     "names part(s) ['english'] that type retrieval does not read"),
    ("  format: lines\n  data_dir_files: {sentence: \"../a.{lang}\", pivot: \"b.{lang}\"}\n", "{search: top1}",
     "must name a file inside the task's data folder"),
    ("  format: lines\n  data_dir_files: {sentence: \"a.txt\", pivot: \"b.{lang}\"}\n", "{search: top1}",
     "has no {lang} placeholder"),
    ("  format: lines\n  data_dir_files: {sentence: \"a.{lang}\", pivot: \"b.{lang}\"}\n", "{search: best, queries: en}",
     "search 'best' is not one of top1, mine"),
    ("  format: lines\n  data_dir_files: {sentence: \"a.{lang}\", pivot: \"b.{lang}\"}\n", "{queries: en}",
     "queries 'en' is not one of sentence, pivot"),
    ("  format: lines\n  data_dir_files: {sentence: \"a.{lang}\", pivot: \"b.{lang}\"}\n", "{neighbourhood: 0}",
     "neighbourhood 0 must be a positive integer"),
    ("  columns: {sentence: s, pivot: p}\n", "{search: top1}", "needs exactly one of `hub:`"),
])
def test_bad_retrieval_task_files_are_refused_with_the_line(tmp_path, source, options, message):
    from xlt.tasks import check_task_file

    _, problems = check_task_file(write_task(tmp_path, source, options))
    assert any(message in p.message and p.line for p in problems), problems


def test_a_users_aligned_files_run_with_their_own_names(tiny_deberta_v3, shared_data, tmp_path, one_torch_thread):
    """A new language pair in a folder of one's own: `data_dir_files:` names its two files, `--data-dir` finds
    them; unequal sides are refused naming both files."""
    data = tmp_path / "data" / "mine"
    data.mkdir(parents=True)
    shutil.copy(shared_data / "tatoeba" / "tatoeba.swh-eng.swh", data / "sw.txt")
    shutil.copy(shared_data / "tatoeba" / "tatoeba.swh-eng.eng", data / "sw-en.txt")
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\ntype: retrieval\nversion: 1\nsource_lang: en\nlanguages: [sw]\n"
                    "eval_splits: [test]\nsource:\n  format: lines\n"
                    "  data_dir_files: {sentence: \"{lang}.txt\", pivot: \"{lang}-en.txt\"}\n")
    results = tmp_path / "results"
    res = run("--model", tiny_deberta_v3, "--task", path, "--data-dir", tmp_path / "data", "--results-dir", results,
              "--quiet")
    assert res.exit_code == 0, res.output
    rec, preds = record_of(results, "mine")
    assert rec["metrics"]["test"]["sw"]["n"] == 390 and len(preds) == 390
    (data / "sw-en.txt").write_text("one line\n")
    res = run("--model", tiny_deberta_v3, "--task", path, "--data-dir", tmp_path / "data", "--results-dir", results,
              "--quiet", "--force")
    assert res.exit_code == 1 and "has 390 lines but" in res.output and "sw-en.txt has 1" in res.output
