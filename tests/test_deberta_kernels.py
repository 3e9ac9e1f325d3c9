"""The hand-written kernels of native DeBERTa beyond what the parity tests cover: dropout draws, bf16 attention."""

import pytest
import torch

from tests.test_deberta_parity import _reference_attention
from xlt.models import deberta_kernels as dk


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_sign_bits_mark_exactly_what_dropout_mask_drops(p, dtype):
    torch.manual_seed(3)
    bits = dk.drop_sign_bits(10_001, p, dtype)
    torch.manual_seed(3)
    drop = dk.dropout_mask((10_001,), p)
    assert bits.dtype == dtype and torch.equal(bits != 0, drop)
    assert torch.all((bits == 0) | (bits == torch.iinfo(dtype).min))  # the sign bit and nothing else


def test_drop_probability_is_rounded_to_2_to_the_16_and_the_scale_follows_it():
    assert dk.keep_scale(0.0) == 1.0 and dk.keep_scale(0.5) == 2.0
    assert dk.keep_scale(0.1) == 65536 / (65536 - 6554)  # p = 6554 / 65536 = 0.100006...
    torch.manual_seed(0)
    x = torch.ones(400_000)
    y = dk.Dropout(0.1).train()(x)
    assert abs(y.mean().item() - 1.0) < 3e-3  # unbiased: E[y] = x


def _inputs(dtype, seed=0, B=2, H=3, T=24, D=8, R=20):
    g = torch.Generator().manual_seed(seed)
    mk = lambda *s: torch.randn(*s, generator=g).to(dtype).requires_grad_()  # noqa: E731
    q, k, v, pos_k, pos_q = mk(B, H, T, D), mk(B, H, T, D), mk(B, H, T, D), mk(1, H, R, D), mk(1, H, R, D)
    idx = torch.randint(0, R, (T, T), generator=g)
    key_bias = torch.zeros(B, 1, 1, T)
    key_bias[1, ..., -5:] = torch.finfo(torch.float32).min
    return q, k, v, pos_k, pos_q, idx, key_bias


def test_bf16_attention_with_dropout_follows_the_fp32_reference():
    """Under bf16 autocast the attention keeps scores, softmax and probabilities in fp32 and runs the v
    product and the backward matmuls in bf16: outputs and gradients (in the inputs' dtype) stay within bf16
    rounding of the fp32 computation with the same dropout mask. A wrong cast or a lost step in the
    mixed-dtype path (the dropout scale, the sign-bit mask, a score gradient left unscaled) fails here."""
    p, scale = 0.2, 0.3
    ref_in = _inputs(torch.float32)
    bf_in = tuple(t.detach().bfloat16().requires_grad_() for t in ref_in[:5]) + ref_in[5:]
    torch.manual_seed(7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = dk.DisentangledAttention.apply(*bf_in, scale, p)  # one batch chunk: one mask draw
    torch.manual_seed(7)
    keep = ~dk.dropout_mask(out.shape[:3] + (out.shape[2],), p)
    ref = _reference_attention(*ref_in, scale, keep, 1 - 1 / dk.keep_scale(p))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=3e-2, rtol=3e-2)
    w = torch.randn_like(ref)
    grads = torch.autograd.grad((out.float() * w).sum(), bf_in[:5])
    ref_grads = torch.autograd.grad((ref * w).sum(), ref_in[:5])
    for name, a, b in zip(("q", "k", "v", "pos_k", "pos_q"), grads, ref_grads):
        assert a.dtype == torch.bfloat16, name
        torch.testing.assert_close(a.float(), b, atol=5e-2, rtol=5e-2, msg=f"gradient of {name}")
