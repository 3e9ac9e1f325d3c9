"""Registry names, resolve_model and load_classifier on tiny local checkpoints (no network)."""

import json

import pytest
import torch

from xlt.errors import XltError
from xlt.models import REGISTRY, load_model, resolve_model
from xlt.models.hf import hf_config
from xlt.models.registry import family_of, param_count

EXPECTED = {  # name -> (hub id, family, impl, hidden, layers, heads, vocab)
    "mdeberta-v3-base": ("microsoft/mdeberta-v3-base", "deberta-v3", "native", 768, 12, 12, 251000),
    "deberta-v3-xsmall": ("microsoft/deberta-v3-xsmall", "deberta-v3", "native", 384, 12, 6, 128100),
    "deberta-v3-small": ("microsoft/deberta-v3-small", "deberta-v3", "native", 768, 6, 12, 128100),
    "deberta-v3-base": ("microsoft/deberta-v3-base", "deberta-v3", "native", 768, 12, 12, 128100),
    "deberta-v3-large": ("microsoft/deberta-v3-large", "deberta-v3", "native", 1024, 24, 16, 128100),
    "deberta-base": ("microsoft/deberta-base", "deberta-v1", "native", 768, 12, 12, 50265),
    "deberta-large": ("microsoft/deberta-large", "deberta-v1", "native", 1024, 24, 16, 50265),
    "deberta-xlarge": ("microsoft/deberta-xlarge", "deberta-v1", "native", 1024, 48, 16, 50265),
    "deberta-v2-xlarge": ("microsoft/deberta-v2-xlarge", "deberta-v2", "native", 1536, 24, 24, 128100),
    "deberta-v2-xxlarge": ("microsoft/deberta-v2-xxlarge", "deberta-v2", "native", 1536, 48, 24, 128100),
    "xlm-roberta-base": ("FacebookAI/xlm-roberta-base", "xlm-roberta", "hf", 768, 12, 12, 250002),
    "xlm-roberta-large": ("FacebookAI/xlm-roberta-large", "xlm-roberta", "hf", 1024, 24, 16, 250002),
    "debertina-xsmall": ("tgsc/debertina-xsmall", "deberta-v3", "native", 384, 12, 6, 128000),
    "debertina-base": ("tgsc/debertina-base", "deberta-v3", "native", 768, 12, 12, 32001),
}


def test_registry_entries_are_the_published_shapes():
    assert set(REGISTRY) == set(EXPECTED)
    for name, (hub, family, impl, hidden, layers, heads, vocab) in EXPECTED.items():
        info = resolve_model(name)
        cfg = info.config
        assert (info.hub_id, info.family, info.impl) == (hub, family, impl), name
        assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["vocab_size"]) == (
            hidden, layers, heads, vocab), name
        if family.startswith("deberta"):
            assert cfg["type_vocab_size"] == 0 and cfg["layer_norm_eps"] == 1e-7, name
            assert family_of(cfg) == family
        if family in ("deberta-v2", "deberta-v3"):
            assert cfg["position_buckets"] == 256 and cfg["share_att_key"] and cfg["norm_rel_ebd"] == "layer_norm"
            assert cfg["position_biased_input"] is False
            assert bool(cfg.get("conv_kernel_size")) == (family == "deberta-v2")


def test_every_registry_config_builds_a_transformers_model_with_the_counted_parameters():
    from transformers import AutoModelForSequenceClassification

    for name, info in REGISTRY.items():
        config = hf_config(info.config, num_labels=3)
        assert config.hidden_size == info.config["hidden_size"]
        with torch.device("meta"):  # shapes only, no memory
            model = AutoModelForSequenceClassification.from_config(config)
        assert sum(p.numel() for p in model.parameters()) == param_count(info.config, num_labels=3), name
    # the published sizes: deberta-v3-xsmall 70.7M (22M backbone + 48M embeddings), mdeberta 278M with head
    assert param_count(REGISTRY["deberta-v3-xsmall"].config) == 70_682_112
    assert round(param_count(REGISTRY["mdeberta-v3-base"].config) / 1e6) == 278


def test_unknown_short_name_lists_the_closest_names():
    with pytest.raises(XltError) as err:
        resolve_model("mdeberta-v3-bse")
    assert "mdeberta-v3-base" in str(err.value) and "xlt models list" in str(err.value)
    with pytest.raises(XltError, match="deberta-v3-large"):
        resolve_model("deberta-v3-larg")


def test_registry_hub_id_resolves_to_the_entry_without_download():
    assert resolve_model("microsoft/mdeberta-v3-base").name == "mdeberta-v3-base"


def test_resolve_local_dir_reads_its_config(tiny_deberta_v3, tiny_xlmr, tmp_path):
    info = resolve_model(str(tiny_deberta_v3))
    assert info.family == "deberta-v3" and info.impl == "native" and info.hub_id == str(tiny_deberta_v3)
    assert info.config["hidden_size"] == 32
    assert resolve_model(str(tiny_xlmr)).family == "xlm-roberta"
    with pytest.raises(XltError, match="config.json"):
        resolve_model(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "deberta-v2", "conv_kernel_size": 3}))
    assert resolve_model(str(tmp_path)).family == "deberta-v2"


@pytest.mark.parametrize("fixture", ["tiny_deberta_v3", "tiny_xlmr"])
@pytest.mark.parametrize("impl", ["auto", "hf"])
def test_load_classifier_on_tiny_checkpoints(fixture, impl, request, tmp_path):
    path = request.getfixturevalue(fixture)
    clf = load_model(str(path), "classification", 3, impl=impl)
    enc = clf.tokenizer(["The cat sat on the mat.", "Le chat est assis."], ["A cat.", "Un chat dort ici."],
                        padding=True, return_tensors="pt")
    assert int(enc["input_ids"].max()) < clf.info.config["vocab_size"]
    assert (enc["input_ids"] == clf.tokenizer.unk_token_id).float().mean() < 0.2
    clf.model.eval()
    logits = clf.model(enc["input_ids"], enc["attention_mask"])
    assert logits.shape == (2, 3)
    assert clf.tokenizer.is_fast
    expected = "native" if (impl == "auto" and fixture == "tiny_deberta_v3") else "hf"
    assert clf.impl == expected
    assert "nothing newly initialised" in clf.load_report
    # SiFT's hook point is the embeddings LayerNorm, and it is part of the model
    assert any(m is clf.embedding_layernorm for m in clf.model.modules())
    assert isinstance(clf.embedding_layernorm, torch.nn.LayerNorm) or "LayerNorm" in type(
        clf.embedding_layernorm).__name__
    # save -> transformers loads it with nothing missing and gives the same logits
    out = clf.save(tmp_path / "saved")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    again, info = AutoModelForSequenceClassification.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    again.eval()
    kwargs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask")}
    torch.testing.assert_close(again(**kwargs).logits, logits, atol=1e-5, rtol=1e-4)
    assert AutoTokenizer.from_pretrained(out)("Le chat.")["input_ids"] == clf.tokenizer("Le chat.")["input_ids"]


def test_load_classifier_pretrained_layout_reports_new_head(spm_model, tmp_path):
    from tests import factories

    path = factories.tiny_checkpoint(tmp_path / "mlm", factories.DEBERTA_V3, spm_model, head="mlm")
    clf = load_model(str(path), "classification", 2, impl="hf")
    assert "newly initialised" in clf.load_report and "classifier.weight" in clf.load_report
    assert "unused" in clf.load_report


def test_load_classifier_rejects_bad_impl_and_native_for_xlmr(tiny_xlmr):
    with pytest.raises(XltError, match="choose one of"):
        load_model(str(tiny_xlmr), "classification", 3, impl="fast")
    with pytest.raises(XltError, match="no native implementation"):
        load_model(str(tiny_xlmr), "classification", 3, impl="native")


@pytest.mark.parametrize("impl", ["auto", "hf"])
def test_load_classifier_gradient_checkpointing_still_trains(tiny_deberta_v3, impl):
    clf = load_model(str(tiny_deberta_v3), "classification", 3, impl=impl, gradient_checkpointing=True)
    clf.model.train()
    ids = torch.randint(5, 1000, (2, 12))
    loss = clf.model(ids, torch.ones_like(ids)).logsumexp(-1).mean()
    loss.backward()
    assert clf.embedding_layernorm.weight.grad is not None
