"""Loading hub-layout DeBERTa checkpoints into the native modules and saving them back (no network)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests import factories
from xlt.errors import XltError
from xlt.models import checkpoint as ck
from xlt.models import deberta as nd

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory, spm_model) -> dict[str, Path]:
    """Tiny checkpoints written by transformers' save_pretrained in the hub's layouts."""
    root = tmp_path_factory.mktemp("ckpts")
    make = factories.tiny_checkpoint
    return {
        "v3-cls": make(root / "v3-cls", factories.DEBERTA_V3, spm_model),
        "v1-cls-bin": _as_bin(make(root / "v1-cls-bin", factories.DEBERTA_V1, spm_model)),
        "v2-mlm": make(root / "v2-mlm", factories.DEBERTA_V2, spm_model, head="mlm"),
        "v3-base": make(root / "v3-base", factories.DEBERTA_V3, spm_model, head="base"),
    }


def _as_bin(path: Path) -> Path:
    """The older hub layout, pytorch_model.bin (transformers 5's save_pretrained writes safetensors only,
    whatever safe_serialization says)."""
    from safetensors.torch import load_file

    torch.save(load_file(str(path / "model.safetensors")), path / "pytorch_model.bin")
    (path / "model.safetensors").unlink()
    return path


def _batch(T=16):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(4, factories.VOCAB_SIZE, (2, T), generator=g)
    mask = torch.ones(2, T, dtype=torch.long)
    mask[1, 10:] = 0
    return ids * mask, mask


def _hf_logits(path, ids, mask, auto=None):
    model = (auto or transformers.AutoModelForSequenceClassification).from_pretrained(path).eval()
    return model(input_ids=ids, attention_mask=mask).logits


@pytest.mark.parametrize("name,weights", [("v3-cls", "model.safetensors"), ("v1-cls-bin", "pytorch_model.bin")])
def test_fine_tuned_checkpoint_loads_exactly(ckpts, name, weights):
    model, report = ck.load_native(ckpts[name], "classification")
    assert report.initialised == () and report.ignored == ()
    assert str(report) == (f"loaded {ckpts[name]} (native, {weights}); nothing newly initialised; "
                           "no unused checkpoint tensors")
    ids, mask = _batch()
    torch.testing.assert_close(model.eval()(ids, mask), _hf_logits(ckpts[name], ids, mask), atol=1e-5, rtol=1e-4)


def test_pretrained_mlm_checkpoint_gets_a_fresh_head(ckpts):
    model, report = ck.load_native(ckpts["v2-mlm"], "classification", num_labels=4)
    assert set(report.initialised) == {"pooler.dense.weight", "pooler.dense.bias", "classifier.weight",
                                       "classifier.bias"}
    assert report.ignored and all(k.startswith("cls.predictions.") and why == "MLM head"
                                  for k, why in report.ignored)
    line = str(report)
    assert "\n" not in line and "newly initialised: pooler.dense.weight" in line
    assert f"cls.* (MLM head) x{len(report.ignored)}" in line
    # head initialised like transformers: normal(0, initializer_range), zero bias
    w = model.classifier.weight
    assert w.shape == (4, 32) and torch.all(model.classifier.bias == 0) and 0.01 < w.std() < 0.03
    # the encoder is exactly the pretrained one
    hf = transformers.AutoModel.from_pretrained(ckpts["v2-mlm"]).eval()
    ids, mask = _batch()
    m = mask.bool()
    torch.testing.assert_close(model.deberta.eval()(ids, mask)[m], hf(input_ids=ids, attention_mask=mask)
                               .last_hidden_state[m], atol=1e-5, rtol=1e-5)


def test_unprefixed_base_checkpoint_into_every_head(ckpts):
    for head, n_new in [("encoder", 0), ("classification", 4), ("token", 2),
                        ("qa", 2)]:
        model, report = ck.load_native(ckpts["v3-base"], head=head)
        assert len(report.initialised) == n_new and report.ignored == ()
    # a classification checkpoint loaded as the bare encoder: its head is knowingly ignored
    model, report = ck.load_native(ckpts["v3-cls"], head="encoder")
    assert isinstance(model, nd.DebertaHiddenStates)
    assert sorted(k for k, _ in report.ignored) == ["classifier.bias", "classifier.weight", "pooler.dense.bias",
                                                   "pooler.dense.weight"]


@pytest.mark.parametrize("name", ["v3-cls", "v1-cls-bin", "v2-mlm"])
def test_save_round_trip_through_transformers(ckpts, tmp_path, name):
    model, _ = ck.load_native(ckpts[name], "classification", num_labels=3)
    with torch.no_grad():
        model.classifier.weight.add_(0.5)  # "fine-tuned"
    out = ck.save_native(model, tmp_path / "saved")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == [("Deberta" if name.startswith("v1") else "DebertaV2")
                                    + "ForSequenceClassification"]
    hf, info = transformers.AutoModelForSequenceClassification.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert hf.config.num_labels == 3
    ids, mask = _batch()
    torch.testing.assert_close(model.eval()(ids, mask), hf.eval()(input_ids=ids, attention_mask=mask).logits,
                               atol=1e-5, rtol=1e-4)
    # and back into the native model, exactly
    again, report = ck.load_native(out, "classification")
    assert report.initialised == () and report.ignored == ()
    torch.testing.assert_close(again.eval()(ids, mask), model(ids, mask), atol=0, rtol=0)


HEAD_AUTO = {"token": ("ForTokenClassification", "AutoModelForTokenClassification"),
             "qa": ("ForQuestionAnswering", "AutoModelForQuestionAnswering")}


def _head_logits(hf_model, ids, mask):
    o = hf_model.eval()(input_ids=ids, attention_mask=mask)
    return o.logits if hasattr(o, "logits") else torch.stack([o.start_logits, o.end_logits], -1)


@pytest.mark.parametrize("name", ["v3-cls", "v1-cls-bin", "v2-mlm"])
@pytest.mark.parametrize("head", ["token", "qa"])
def test_token_and_qa_models_save_into_transformers_auto_classes(ckpts, tmp_path, name, head):
    """A fine-tuned native token classifier / QA model is a checkpoint transformers' AutoModelFor* loads with
    nothing missing, unexpected or mismatched, giving the same logits; and it loads back natively exactly."""
    model, _ = ck.load_native(ckpts[name], head=head, num_labels=7 if head == "token" else None)
    out_layer = model.classifier if head == "token" else model.qa_outputs
    with torch.no_grad():  # "fine-tuned": head and encoder both moved
        out_layer.weight.add_(0.5)
        out_layer.bias.add_(0.1)
        model.deberta.encoder.layer[0].output.dense.weight.mul_(1.5)
    out = ck.save_native(model, tmp_path / "saved")
    kind, auto_name = HEAD_AUTO[head]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == [("Deberta" if name.startswith("v1") else "DebertaV2") + kind]
    hf, info = getattr(transformers, auto_name).from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert hf.config.num_labels == (7 if head == "token" else 2)
    ids, mask = _batch()
    m = mask.bool()
    ours = model.eval()(ids, mask)
    assert ours.shape == (2, 16, hf.config.num_labels)
    torch.testing.assert_close(ours[m], _head_logits(hf, ids, mask)[m], atol=1e-5, rtol=1e-4)
    again, report = ck.load_native(out, head=head)
    assert report.initialised == () and report.ignored == () and report.reinitialised == ()
    torch.testing.assert_close(again.eval()(ids, mask), ours, atol=0, rtol=0)


@pytest.mark.parametrize("head,new", [("token", ["classifier.weight", "classifier.bias"]),
                                      ("qa", ["qa_outputs.weight", "qa_outputs.bias"])])
def test_pretrained_mlm_checkpoint_gets_a_fresh_token_or_qa_head(ckpts, head, new):
    model, report = ck.load_native(ckpts["v2-mlm"], head=head, num_labels=7 if head == "token" else None)
    assert list(report.initialised) == new
    assert report.ignored and all(k.startswith("cls.predictions.") and why == "MLM head"
                                  for k, why in report.ignored)
    assert f"newly initialised: {new[0]}, {new[1]}; unused checkpoint tensors: cls.* (MLM head) " \
           f"x{len(report.ignored)}" in str(report)
    w = getattr(model, new[0].split(".")[0]).weight
    assert w.shape == ((7, 32) if head == "token" else (2, 32)) and 0.01 < w.std() < 0.03
    ids, mask = _batch()
    hf = transformers.AutoModel.from_pretrained(ckpts["v2-mlm"]).eval()
    m = mask.bool()
    torch.testing.assert_close(model.deberta.eval()(ids, mask)[m], hf(input_ids=ids, attention_mask=mask)
                               .last_hidden_state[m], atol=1e-5, rtol=1e-5)


def test_a_qa_head_has_start_and_end_outputs_whatever_the_config_counts(ckpts):
    from xlt.models.heads import HEADS

    assert set(HEADS) == {"classification", "token", "qa", "encoder"}  # the one head table
    model, _ = ck.load_native(ckpts["v3-cls"], head="qa")  # a 3-label config still gets start/end outputs
    assert model.qa_outputs.weight.shape == (2, 32)
    with pytest.raises(XltError, match="has 2 outputs of its own"):
        ck.load_native(ckpts["v3-cls"], head="qa", num_labels=3)


def test_classifier_for_another_label_count_is_reinitialised(ckpts):
    fine_tuned, _ = ck.load_native(ckpts["v3-cls"], "classification", num_labels=3)
    model, report = ck.load_native(ckpts["v3-cls"], "classification", num_labels=5)
    assert [k for k, _, _ in report.reinitialised] == ["classifier.weight", "classifier.bias"]
    assert "re-initialised for a different label count: classifier.weight (3, 32) -> (5, 32), " \
           "classifier.bias (3,) -> (5,)" in str(report)
    assert "classifier" not in " ".join(k for k, _ in report.ignored)  # counted once, not also as unused
    w = model.classifier.weight
    assert w.shape == (5, 32) and torch.all(model.classifier.bias == 0) and 0.01 < w.std() < 0.03
    # encoder and pooler are the fine-tuned ones
    torch.testing.assert_close(model.pooler.dense.weight, fine_tuned.pooler.dense.weight, rtol=0, atol=0)
    torch.testing.assert_close(model.deberta.encoder.layer[0].attention.self.query_proj.weight,
                               fine_tuned.deberta.encoder.layer[0].attention.self.query_proj.weight, rtol=0, atol=0)


def test_encoder_shape_mismatch_names_tensor_and_shapes():
    model = nd.DebertaModel(nd.DebertaConfig.from_hf(factories.DEBERTA_V3))
    state = dict(model.state_dict())
    state["encoder.rel_embeddings.weight"] = torch.zeros(10, 32)
    with pytest.raises(XltError, match=r"encoder\.rel_embeddings\.weight: checkpoint \(10, 32\), model \(512, 32\)"):
        ck.load_state(model, state)


def test_knowingly_ignored_and_unknown_tensors():
    model = nd.DebertaForSequenceClassification(nd.DebertaConfig.from_hf(factories.DEBERTA_V3))
    state = dict(model.state_dict())
    state["deberta.embeddings.position_ids"] = torch.arange(512)[None]
    state["deberta.embeddings.position_embeddings.weight"] = torch.zeros(512, 32)  # v3 hub checkpoints carry it
    state["lm_predictions.lm_head.bias"] = torch.zeros(10)
    state["mask_predictions.classifier.weight"] = torch.zeros(1, 32)
    report = ck.load_state(model, state)
    assert dict(report.ignored) == {
        "deberta.embeddings.position_ids": "buffer",
        "deberta.embeddings.position_embeddings.weight": "position_biased_input is false",
        "lm_predictions.lm_head.bias": "MLM head", "mask_predictions.classifier.weight": "RTD head"}
    state["deberta.encoder.layer.0.attention.self.talking_proj.weight"] = torch.zeros(2)
    with pytest.raises(XltError, match="talking_proj"):
        ck.load_state(model, state)
    del state["deberta.encoder.layer.0.attention.self.talking_proj.weight"]
    del state["deberta.encoder.layer.1.output.dense.weight"]
    with pytest.raises(XltError, match=r"lacks encoder tensors deberta\.encoder\.layer\.1\.output\.dense\.weight"):
        ck.load_state(model, state)


def test_file_errors(tmp_path, ckpts):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text(json.dumps(factories.DEBERTA_V3))
    with pytest.raises(XltError, match="no model.safetensors or pytorch_model.bin"):
        ck.load_native(empty, "classification")
    with pytest.raises(XltError, match="not a checkpoint directory"):
        ck.load_native(tmp_path / "nowhere", "classification")
    with pytest.raises(XltError, match="unknown head"):
        ck.load_native(ckpts["v3-cls"], head="mlm")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps(factories.XLMR))
    with pytest.raises(XltError, match="impl hf"):
        ck.load_native(bad, "classification")


def test_offline_hub_id_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(XltError, match="HF_HUB_OFFLINE is set.*local directory"):
        ck.load_native("microsoft/mdeberta-v3-base", "classification")


def test_sharded_safetensors(ckpts, tmp_path):
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(ckpts["v3-cls"])
    hf.save_pretrained(tmp_path / "sharded", max_shard_size="100KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    model, report = ck.load_native(tmp_path / "sharded", "classification")
    assert "shards" in report.weights and report.initialised == ()
    ids, mask = _batch()
    torch.testing.assert_close(model.eval()(ids, mask), hf.eval()(input_ids=ids, attention_mask=mask).logits,
                               atol=1e-5, rtol=1e-4)


def test_native_path_does_not_import_transformers(ckpts):
    code = ("import sys; from xlt.models.checkpoint import load_native; m, r = load_native(sys.argv[1], 'classification'); "
            "assert 'transformers' not in sys.modules, 'transformers imported'; print(r)")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", code, str(ckpts["v3-cls"])], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "nothing newly initialised" in out.stdout
