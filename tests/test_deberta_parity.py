"""Native DeBERTa vs transformers (the oracle) on the same weights: every config switch, fp32, eval mode.

Outputs are compared on real tokens only (padded positions carry no meaning; see xlt/models/deberta.py).
"""

from __future__ import annotations

import pytest
import torch

from tests import factories
from xlt.models import deberta as nd

transformers = pytest.importorskip("transformers")

V1, V2, V3 = factories.DEBERTA_V1, factories.DEBERTA_V2, factories.DEBERTA_V3

VARIANTS = {
    "v1": dict(V1),
    "v1-maxrel512-biased": dict(V1, max_relative_positions=512, position_biased_input=True),
    "v1-maxrel8-long": dict(V1, max_relative_positions=8, _T=40),
    "v1-c2p-types": dict(V1, pos_att_type="c2p", type_vocab_size=2),
    "v2-conv": dict(V2),
    "v2-nobuckets-p2c": dict(V2, position_buckets=-1, max_relative_positions=16, pos_att_type="p2c",
                             share_att_key=False, norm_rel_ebd="none", conv_act="tanh"),
    "v3": dict(V3),
    "v3-c2p-unshared-types": dict(V3, pos_att_type=["c2p"], share_att_key=False, type_vocab_size=2),
    "v3-p2c-embsize": dict(V3, pos_att_type="p2c", embedding_size=16),
    "v3-buckets8-long": dict(V3, position_buckets=8, max_relative_positions=24, max_position_embeddings=32, _T=40),
    "v3-no-relative": dict(V3, relative_attention=False, pos_att_type=None),
}


def _hf_config(cfg: dict, **kw):
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    model_type = cfg.pop("model_type")
    return transformers.AutoConfig.for_model(model_type, **cfg, **kw)


def _batch(T: int, vocab: int, types: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, vocab, (3, T), generator=g)
    mask = torch.ones(3, T, dtype=torch.long)
    mask[1, T - 5:] = 0  # mixed lengths: full, 5 pads, mostly padding
    mask[2, 4:] = 0
    ids = ids * mask  # pad id 0
    tt = (torch.arange(T) >= T // 2).long().expand(3, T).contiguous() if types else None
    return ids, mask, tt


def _pair(cfg: dict, auto=None, native=nd.DebertaModel, num_labels=3):
    """(transformers model, native model) with identical weights, both in eval mode."""
    hc = _hf_config(cfg, num_labels=num_labels)
    torch.manual_seed(0)
    hf = (auto or transformers.AutoModel).from_config(hc).eval()
    with torch.no_grad():  # make biases and LayerNorms non-trivial so they are tested too
        for name, p in hf.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    nat = native(nd.DebertaConfig.from_hf(hc.to_dict())).eval()
    nat.load_state_dict(hf.state_dict())  # strict: parameter names are transformers'
    return hf, nat


def _grads(model, prefix: str = "") -> dict:
    return {prefix + n: p.grad for n, p in model.named_parameters() if p.grad is not None}


def _assert_same_gradients(hf, nat) -> None:
    """Both models received gradients for the same parameters (transformers' names), and equal ones."""
    ga, gb = _grads(hf), _grads(nat)
    assert set(ga) == set(gb)
    for k in ga:
        torch.testing.assert_close(gb[k], ga[k], atol=1e-4, rtol=1e-4, msg=f"gradient of {k}")


@pytest.mark.parametrize("name", list(VARIANTS))
def test_encoder_output_and_gradients_match_transformers(name):
    cfg = VARIANTS[name]
    T = cfg.get("_T", 24)
    hf, nat = _pair(cfg)
    ids, mask, tt = _batch(T, cfg["vocab_size"], bool(cfg.get("type_vocab_size")))
    a = hf(input_ids=ids, attention_mask=mask, token_type_ids=tt).last_hidden_state
    b = nat(ids, mask, tt)
    m = mask.bool()
    assert a[m].abs().mean() > 0.1  # not a trivial output
    torch.testing.assert_close(b[m], a[m], atol=1e-5, rtol=1e-5)

    w = torch.randn_like(a) * mask[..., None]  # a loss on real tokens only
    (a * w).sum().backward()
    (b * w).sum().backward()
    _assert_same_gradients(hf, nat)


@pytest.mark.parametrize("name", ["v1", "v2-conv", "v3"])
def test_sequence_classification_logits_and_gradients(name):
    cfg = VARIANTS[name]
    hf, nat = _pair(cfg, transformers.AutoModelForSequenceClassification, nd.DebertaForSequenceClassification)
    ids, mask, tt = _batch(24, cfg["vocab_size"], False)
    a = hf(input_ids=ids, attention_mask=mask).logits
    b = nat(ids, mask)
    assert b.shape == (3, 3)
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)
    labels = torch.tensor([0, 1, 2])
    torch.nn.functional.cross_entropy(a, labels).backward()
    torch.nn.functional.cross_entropy(b, labels).backward()
    _assert_same_gradients(hf, nat)


HEAD_CLASSES = {  # head -> (transformers Auto class, native class, num_labels)
    "token": (transformers.AutoModelForTokenClassification, nd.DebertaForTokenClassification, 5),
    "qa": (transformers.AutoModelForQuestionAnswering, nd.DebertaForQuestionAnswering, 2),
}


@pytest.mark.parametrize("name", ["v1", "v2-conv", "v3", "v3-c2p-unshared-types"])
@pytest.mark.parametrize("head", list(HEAD_CLASSES))
def test_token_and_qa_heads(head, name):
    """DebertaV2For{TokenClassification,QuestionAnswering} (and v1's Deberta*) on the same weights: equal
    per-token logits on real tokens of a padded batch, and equal gradients of a loss over real tokens."""
    cfg = VARIANTS[name]
    auto, native, n = HEAD_CLASSES[head]
    hf, nat = _pair(cfg, auto, native, num_labels=n)
    ids, mask, tt = _batch(24, cfg["vocab_size"], bool(cfg.get("type_vocab_size")))
    out = hf(input_ids=ids, attention_mask=mask, token_type_ids=tt)
    b = nat(ids, mask, tt)
    a = out.logits if head == "token" else torch.stack([out.start_logits, out.end_logits], -1)
    assert b.shape == (3, 24, n)
    m = mask.bool()
    torch.testing.assert_close(b[m], a[m], atol=1e-5, rtol=1e-4)
    w = torch.randn_like(a) * mask[..., None]  # a loss on real tokens only
    (a * w).sum().backward()
    (b * w).sum().backward()
    _assert_same_gradients(hf, nat)


def test_gradient_checkpointing_same_gradients():
    _, nat = _pair(V2)
    ids, mask, _ = _batch(24, V2["vocab_size"], False)
    nat.train()  # checkpointing only applies in training; no dropout so results are comparable
    for m in nat.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    for layer in nat.encoder.layer:
        layer.attention.self.dropout_p = 0.0
    nat(ids, mask).square().sum().backward()
    ref = {k: v.clone() for k, v in _grads(nat).items()}
    nat.zero_grad()
    nat.gradient_checkpointing_enable()
    nat(ids, mask).square().sum().backward()
    for k, v in _grads(nat).items():
        torch.testing.assert_close(v, ref[k], atol=1e-5, rtol=1e-5)


def test_config_quirks():
    a = nd.DebertaConfig.from_hf(dict(V2))
    assert a.pos_att_type == ("p2c", "c2p") and a.max_relative_positions == 512 and a.conv_kernel_size == 3
    assert a.position_buckets == 256 and a.norm_rel_ebd and a.share_att_key and a.att_span == 256
    assert a.scale_factor == 3 and a.embedding_size == 32 and a.cls_dropout == 0.1
    v1 = nd.DebertaConfig.from_hf(dict(V1, position_buckets=8, share_att_key=True))
    assert v1.version == 1 and v1.position_buckets == 0 and not v1.share_att_key  # v1 ignores v2 switches
    bare = nd.DebertaConfig.from_hf({"model_type": "deberta-v2", "hidden_size": 32, "num_attention_heads": 4})
    assert not bare.relative_attention and bare.position_biased_input and bare.pos_att_type == ()
    assert nd.DebertaConfig.from_hf(dict(V3, id2label={"1": "b", "0": "a"})).id2label == ("a", "b")
    with pytest.raises(ValueError, match="p2p"):
        nd.DebertaConfig.from_hf(dict(V3, pos_att_type="c2p|p2p"))
    with pytest.raises(ValueError, match="not DeBERTa"):
        nd.DebertaConfig.from_hf({"model_type": "bert"})
    # to_hf round-trips through from_hf
    assert nd.DebertaConfig.from_hf(a.to_hf()) == a
    assert nd.DebertaConfig.from_hf(v1.to_hf()) == v1


def test_long_sequences():
    # relative-only models run past max_position_embeddings (distances clamp to the outermost bucket) ...
    cfg = dict(V3, max_position_embeddings=16, position_buckets=4, max_relative_positions=16)
    hf, nat = _pair(cfg)
    ids, mask, _ = _batch(40, V3["vocab_size"], False)
    m = mask.bool()
    torch.testing.assert_close(nat(ids, mask)[m], hf(input_ids=ids, attention_mask=mask).last_hidden_state[m],
                               atol=1e-5, rtol=1e-5)
    # ... absolute-position models refuse, naming the limit
    _, nat1 = _pair(dict(V1, max_position_embeddings=16, position_biased_input=True))
    with pytest.raises(ValueError, match="max_position_embeddings 16"):
        nat1(ids, mask)


def test_relative_index_cached_per_length():
    _, nat = _pair(V3)
    ids, mask, _ = _batch(24, V3["vocab_size"], False)
    nat(ids, mask)
    nat(ids, mask)
    nat(ids[:, :10], mask[:, :10])
    assert sorted(k[0] for k in nat.encoder._rel_cache) == [10, 24]


def test_training_after_an_inference_mode_forward_of_the_same_length():
    # Evaluate-then-train is the fine-tuning loop's rhythm; the cached index must not be an inference tensor.
    _, nat = _pair(V3)
    ids, mask, _ = _batch(24, V3["vocab_size"], False)
    with torch.inference_mode():
        nat(ids, mask)
    nat.train()
    nat(ids, mask).sum().backward()
    assert all(p.grad is not None for p in nat.encoder.layer[0].parameters())


def _attention_inputs(seed=0, B=2, H=2, T=9, D=4, R=7):
    g = torch.Generator().manual_seed(seed)
    mk = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64).requires_grad_()  # noqa: E731
    q, k, v, pos_k, pos_q = mk(B, H, T, D), mk(B, H, T, D), mk(B, H, T, D), mk(1, H, R, D), mk(1, H, R, D)
    idx = torch.randint(0, R, (T, T), generator=g)
    key_bias = torch.zeros(B, 1, 1, T, dtype=torch.float64)
    key_bias[1, ..., -3:] = torch.finfo(torch.float64).min
    return q, k, v, pos_k, pos_q, idx, key_bias


def _reference_attention(q, k, v, pos_k, pos_q, idx, key_bias, scale, mask=None, p=0.0):
    B, H, T, _ = q.shape
    c2p = torch.gather(q @ pos_k.transpose(-1, -2), -1, idx.expand(B, H, T, T))
    p2c = torch.gather(k @ pos_q.transpose(-1, -2), -1, idx.t().expand(B, H, T, T)).transpose(-1, -2)
    probs = torch.softmax((q @ k.transpose(-1, -2) + c2p + p2c) * scale + key_bias, -1)
    if mask is not None:
        probs = probs * mask / (1 - p)
    return probs @ v


def test_fused_attention_gradcheck():
    args = _attention_inputs()
    fn = lambda q, k, v, pk, pq: nd.DisentangledAttention.apply(q, k, v, pk, pq, *args[5:], 0.3, 0.0)  # noqa
    assert torch.autograd.gradcheck(fn, args[:5])
    torch.testing.assert_close(fn(*args[:5]), _reference_attention(*args, 0.3))


def test_fused_attention_dropout_matches_reference_with_the_same_mask():
    args = _attention_inputs(1)
    torch.manual_seed(5)
    out = nd.DisentangledAttention.apply(*args, 0.3, 0.25)  # one batch chunk: one dropout_mask draw
    torch.manual_seed(5)
    mask = ~nd.dropout_mask(out.shape[:3] + (out.shape[2],), 0.25)
    assert 0 < mask.sum() < mask.numel()
    ref = _reference_attention(*args, 0.3, mask, 0.25)
    torch.testing.assert_close(out, ref)
    w = torch.randn_like(out)
    g1 = torch.autograd.grad((out * w).sum(), args[:5])
    g2 = torch.autograd.grad((ref * w).sum(), args[:5])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


def test_fused_attention_gradcheck_with_fewer_queries_than_keys():
    q, k, v, pos_k, pos_q, idx, key_bias = _attention_inputs(2)
    q2 = q.detach()[:, :, :3].clone().requires_grad_()  # the first 3 of 9 positions attend
    fn = lambda q, k, v, pk, pq: nd.DisentangledAttention.apply(q, k, v, pk, pq, idx[:3], key_bias, 0.3, 0.0)  # noqa
    assert torch.autograd.gradcheck(fn, (q2, k, v, pos_k, pos_q))
    full = nd.DisentangledAttention.apply(q, k, v, pos_k, pos_q, idx, key_bias, 0.3, 0.0)
    torch.testing.assert_close(fn(q2, k, v, pos_k, pos_q), full[:, :, :3])


@pytest.mark.parametrize("name", ["v1", "v2-conv", "v3", "v3-no-relative"])
def test_last_layer_queries_gives_the_same_cls_row(name):
    cfg = dict(VARIANTS[name])
    _, nat = _pair(cfg)
    ids, mask, tt = _batch(cfg.get("_T", 24), cfg["vocab_size"], cfg.get("type_vocab_size", 0) > 0)
    with torch.no_grad():  # inference: the SDPA path
        full = nat(ids, mask, tt)
        cls = nat(ids, mask, tt, last_layer_queries=1)
    assert cls.shape == (3, 1, full.size(-1))
    torch.testing.assert_close(cls[:, 0], full[:, 0], atol=1e-5, rtol=1e-5)
    cls = nat(ids, mask, tt, last_layer_queries=1)  # training path (grad enabled): the autograd Function
    torch.testing.assert_close(cls[:, 0], full[:, 0], atol=1e-5, rtol=1e-5)
    one_layer = dict(cfg, num_hidden_layers=1)  # v2: the conv after layer 0 needs every position
    _, nat1 = _pair(one_layer)
    with torch.no_grad():
        torch.testing.assert_close(nat1(ids, mask, tt, last_layer_queries=1)[:, 0], nat1(ids, mask, tt)[:, 0],
                                   atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_mask_drops_with_probability_p_and_follows_the_seed(p):
    torch.manual_seed(0)
    drop = nd.dropout_mask((1000, 1001), p)  # odd size: the last int64 word is half used
    assert drop.shape == (1000, 1001) and drop.dtype == torch.bool
    assert abs(drop.float().mean().item() - p) < 5 * (p * (1 - p) / drop.numel()) ** 0.5
    torch.manual_seed(0)
    assert torch.equal(nd.dropout_mask((1000, 1001), p), drop)
    assert not nd.dropout_mask((10000,), 0.0).any()


def test_dropout_module_zeroes_scales_and_passes_gradients_through_the_kept_elements():
    layer = nd.Dropout(0.25)
    x = torch.randn(64, 64, requires_grad=True)
    y = layer(x)
    kept = y != 0
    assert 0.6 < kept.float().mean() < 0.9
    torch.testing.assert_close(y[kept], x[kept] / 0.75)
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.75)
    assert layer.eval()(x) is x


def test_bf16_autocast_runs_and_stays_close():
    hf, nat = _pair(V3)
    ids, mask, _ = _batch(24, V3["vocab_size"], False)
    m = mask.bool()
    ref = nat(ids, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = nat(ids, mask)  # training-style (grad enabled): the fused fp32 attention
        with torch.no_grad():
            out_ng = nat(ids, mask)  # inference: one SDPA call
    assert torch.isfinite(out).all() and torch.isfinite(out_ng).all()
    assert (out.float() - ref)[m].abs().max() < 0.1 and (out_ng.float() - ref)[m].abs().max() < 0.1
    out.float().sum().backward()
