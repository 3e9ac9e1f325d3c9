"""Hand-written kernels of native DeBERTa (xlt/models/deberta.py): autograd Functions and dropout masks.

The model file reads like the paper; what is here computes the same numbers with less memory and time than
autograd would on CPU (tests/test_deberta_parity.py checks each against plain torch ops and transformers):

  - `dropout_mask` / `Dropout`: masks drawn as int64 words instead of `bernoulli_`.
  - `DisentangledAttention`: softmax((q k^T + c2p + p2c) * scale + key_bias) v with dropout, keeping one
    (B, H, T, T) tensor for backward instead of autograd's ~5.
  - `FeedForward`: act(x W1^T + b1) W2^T + b2, recomputing act() in backward instead of keeping its output.

Depends on torch only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# ----------------------------------------------------------------------------------------------------------
# Dropout


def random_words(n: int, device=None) -> torch.Tensor:
    """n uniform int16 words, four per int64 `random_()` draw.

    torch's CPU generator draws serially (one thread, whatever torch.get_num_threads() says), so fewer,
    wider draws are what makes masks cheap: 2x faster than 32-bit words, ~8x faster than `bernoulli_`.
    Seeded by torch's generator like every other random op.
    """
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-2**63, None)
    return words.view(torch.int16)[:n]


def drop_threshold(p: float) -> int:
    """t such that a uniform int16 word is > t with probability round(p * 2^16) / 2^16 (p in [0, 1))."""
    return max(2**15 - 1 - round(p * 2**16), -2**15)


def keep_scale(p: float) -> float:
    """1 / (1 - p) for the p the masks actually draw (p rounded to 2^-16), so kept values stay unbiased."""
    dropped = 2**15 - 1 - drop_threshold(p)  # of 2^16 word values
    return 2**16 / (2**16 - dropped)


def dropout_mask(shape, p: float, device=None) -> torch.Tensor:
    """Bool mask, True where an element is dropped (probability p, rounded to 2^-16)."""
    return (random_words(math.prod(shape), device) > drop_threshold(p)).view(shape)


def drop_sign_bits(n: int, p: float, dtype=torch.int32, device=None) -> torch.Tensor:
    """Integer words (int32 for fp32 values, int64 for fp64) with only the sign bit set where `dropout_mask`
    (the same draws) would drop, else 0.

    OR-ed into the bits of non-negative floats, this negates exactly the dropped ones in one integer pass;
    torch.where / masked_fill with a bool mask run ~8x slower on CPU.
    """
    r = random_words(n, device).to(dtype)
    t = torch.tensor(drop_threshold(p), dtype=dtype, device=device)
    return torch.sub(t, r, out=r).bitwise_and_(torch.iinfo(dtype).min)  # t - r < 0 exactly where r > t


class Dropout(nn.Dropout):
    """nn.Dropout with the masks of `dropout_mask`; autograd keeps the bool mask, as torch's dropout does.
    Multiplying by the bool mask is ~5x faster on CPU than masked_fill."""

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = (random_words(x.numel(), x.device) <= drop_threshold(self.p)).view(x.shape)
        return torch.mul(x, keep).mul_(keep_scale(self.p))


# ----------------------------------------------------------------------------------------------------------
# Disentangled attention


def disentangled_attention(q, k, v, pos_k, pos_q, idx, key_bias, scale, dropout_p):
    """softmax((q k^T + c2p + p2c) * scale + key_bias) v, dropout p on the probabilities: (B, H, Q, D).

    q (B, H, Q, D) for the first Q <= T positions; k, v (B, H, T, D); pos_k, pos_q (1, H, R, D) or None;
    idx (Q, T) relative rows; key_bias (B, 1, 1, T) additive padding mask or None.
      - Inference (no grad): the position terms * scale plus the padding mask are one additive bias for a
        single `scaled_dot_product_attention` call.
      - Training: SDPA's CPU backward cannot give a gradient to its mask (and dropout forces its math path),
        so it would autograd through ~5 (B, H, T, T) tensors per layer; `DisentangledAttention` instead.
    """
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (q, k, v, pos_k, pos_q)):
        return DisentangledAttention.apply(q, k, v, pos_k, pos_q, idx, key_bias, scale, dropout_p)
    bias = disentangled_bias(q, k, pos_k, pos_q, idx, scale)  # (B, H, Q, T) or None
    if key_bias is not None:
        bias = key_bias if bias is None else bias + key_bias
    bias = None if bias is None else bias.to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v.to(q.dtype), attn_mask=bias, dropout_p=dropout_p, scale=scale)


def flat_index(idx, T, pos_k, pos_q):
    """idx (Q, T) as flat positions: of (i, idx[i, j]) in (Q, R) for c2p, of (idx[i, j], j) in (R, T) for p2c.

    With them each gather reads rows of a flat (B*H, Q*R) or (B*H, R*T) view (`take_flat`); the p2c gather along
    the row axis gets 2.3x faster on CPU than torch.gather(dim=-2) with the (Q, T) index, and the backward of
    either is one flat index_add_. (index_select with the flat index is faster still on one thread, but runs
    on one thread only; gather uses them all.)
    """
    if idx is None:
        return None, None
    rows = torch.arange(idx.size(0), device=idx.device)[:, None]
    c2p = (rows * pos_k.size(2) + idx).view(-1) if pos_k is not None else None
    p2c = (idx * T + torch.arange(T, device=idx.device)[None, :]).view(-1) if pos_q is not None else None
    return c2p, p2c


def take_flat(x, flat, out=None):
    """x (..., N) viewed as rows (M, N); returns (M, len(flat)) with row m = x[m, flat]."""
    rows = x.reshape(-1, x.size(-1))
    return torch.gather(rows, 1, flat.expand(rows.size(0), -1), out=out)


def disentangled_bias(q, k, pos_k, pos_q, idx, scale):
    """(c2p + p2c) * scale: (B, H, Q, T), or None without position terms. q (B, H, Q, D) for the first Q <= T
    positions, k (B, H, T, D), pos_* (1, H, R, D), idx (Q, T).

    c2p[i, j] = q_i . pos_k[idx[i, j]]  (rows of q @ pos_k^T gathered along the last axis)
    p2c[i, j] = pos_q[idx[i, j]] . k_j  (columns of pos_q @ k^T gathered along the row axis; transformers
    gathers k @ pos_q^T with the negated index and transposes, which is the same number)
    Both gathers read flat rows (see flat_index).
    """
    if pos_k is None and pos_q is None:
        return None
    (B, H, Q, _), T = q.shape, k.size(2)
    c2p_flat, p2c_flat = flat_index(idx, T, pos_k, pos_q)
    bias = None
    if pos_k is not None:
        c2p = torch.matmul(q, pos_k.transpose(-1, -2).to(q.dtype))  # (B, H, Q, R)
        bias = take_flat(c2p.view(B, H, -1), c2p_flat).view(B, H, Q, T)
    if pos_q is not None:
        p2c = torch.matmul(pos_q.to(k.dtype), k.transpose(-1, -2))  # (B, H, R, T)
        p2c = take_flat(p2c.view(B, H, -1), p2c_flat).view(B, H, Q, T)
        bias = p2c if bias is None else bias.add_(p2c)
    return bias.mul_(scale) if scale != 1.0 else bias


class DisentangledAttention(torch.autograd.Function):
    """softmax((q k^T + c2p + p2c) * scale + key_bias) v with dropout on the probabilities.

    Precision: the scores (q k^T, c2p, p2c), the softmax, its backward and the kept probabilities are fp32
    whatever the inputs are; the product with v and every backward matmul run in the inputs' dtype (bf16
    under bf16 autocast, like nn.Linear). With bf16 scores as well, a from-scratch model learned measurably
    less in tests/test_train_bf16.py's setting (0.3815 vs 0.3972 at seed 0; see docs/benchmarks.md).

    Autograd through these ops keeps ~5 (B, H, T, T) tensors per layer (scores, gathered c2p/p2c, softmax
    output, dropout output and mask) and allocates as many again in backward. This keeps one: the fp32
    probabilities with the dropout mask in their sign bit (a dropped probability p is stored as -p; softmax
    outputs are >= 0, so abs() gives p back and clamp(min=0) gives the kept probabilities). Neither the mask
    nor the output is saved: the softmax backward's rowsum(p * dp) is summed from the chunk's own (T, T)
    tiles. It works chunk by chunk over the batch (each chunk's (b, H, T, T) temporaries stay around 16 MB and
    are reused), folds the 1/(1-p) dropout scale into the (T, D)-sized tensors, and turns the gather backward
    into one flat index_add_ per position term (3-4x faster than scatter_add_ on CPU). The dropout mask is
    OR-ed into the sign bits as integers (`drop_sign_bits`), ~8x faster than torch.where with a bool mask.
    Gradients flow to q, k, v, pos_k, pos_q (not to the padding bias).
    """

    @staticmethod
    def _chunks(B, H, Q, T):  # batch slices keeping each (b, H, Q, T) chunk around 16 MB
        step = max(1, (4 * 2**20) // (H * Q * T))
        return [slice(i, min(B, i + step)) for i in range(0, B, step)]

    @staticmethod
    def forward(ctx, q, k, v, pos_k, pos_q, idx, key_bias, scale, dropout_p):
        with torch.autocast(q.device.type, enabled=False):
            return DisentangledAttention._forward(ctx, q, k, v, pos_k, pos_q, idx, key_bias, scale, dropout_p)

    @staticmethod
    def _forward(ctx, q, k, v, pos_k, pos_q, idx, key_bias, scale, dropout_p):
        # mt: the inputs' dtype (bf16 under autocast) for the v product and the backward matmuls;
        # st: fp32 (or fp64 in gradcheck) for the scores, softmax and kept probabilities.
        ctx.dtypes = [t.dtype if t is not None else None for t in (q, k, v, pos_k, pos_q)]
        mt = q.dtype
        st = torch.float32 if mt in (torch.float16, torch.bfloat16) else mt
        q = (q * scale).contiguous()  # the scale folded into q and pos_q: no (T, T) pass for it
        k, v = k.to(mt).contiguous(), v.to(mt).contiguous()
        pos_k = pos_k.to(mt) if pos_k is not None else None
        pos_q = pos_q.to(mt) * scale if pos_q is not None else None
        key_bias = key_bias.to(st) if key_bias is not None else None
        (B, H, Q, D), T = q.shape, k.size(2)  # Q <= T queries: the first Q positions
        c2p_flat, p2c_flat = flat_index(idx, T, pos_k, pos_q)
        out = q.new_empty(B, H, Q, v.size(-1))
        probs = q.new_empty(B, H, Q, T, dtype=st)  # kept for backward, dropped entries negated (class docstring)
        pk32 = pos_k.to(st) if pos_k is not None else None  # the score matmuls' operands, in st
        pq32 = pos_q.to(st) if pos_q is not None else None
        for c in DisentangledAttention._chunks(B, H, Q, T):
            qc, kc = q[c].to(st), k[c].to(st)  # (b, H, Q or T, D); no copy in fp32
            b = qc.size(0)
            s = q.new_empty(b * H, Q * T, dtype=st)  # scores, flat per (batch, head)
            if pos_k is not None:  # c2p[i, j] = q_i . pos_k[idx[i, j]], gathered along each row
                c2p = torch.matmul(qc, pk32.transpose(-1, -2))  # (b, H, Q, R)
                take_flat(c2p.view(b, H, -1), c2p_flat, out=s)
            if pos_q is not None:  # p2c[i, j] = pos_q[idx[i, j]] . k_j, from the rows of pos_q k^T
                p2c = torch.matmul(pq32, kc.transpose(-1, -2)).view(b * H, -1)  # (b*H, R*T)
                if pos_k is None:
                    take_flat(p2c, p2c_flat, out=s)
                else:
                    s.add_(take_flat(p2c, p2c_flat))
            s = s.view(b * H, Q, T)
            qk = (qc.reshape(b * H, Q, D), kc.reshape(b * H, T, D).transpose(1, 2))
            s = s.baddbmm_(*qk) if pos_k is not None or pos_q is not None else torch.bmm(*qk, out=s)
            s = s.view(b, H, Q, T)
            if key_bias is not None:
                s.add_(key_bias[c])
            p = torch.ops.aten._softmax.out(s, -1, False, out=probs[c])
            if dropout_p > 0:  # mark dropped probabilities by their sign bit; the kept ones are p >= 0
                bits = {4: torch.int32, 8: torch.int64}[p.element_size()]
                p.view(bits).bitwise_or_(drop_sign_bits(p.numel(), dropout_p, bits, p.device).view(p.shape))
                p = torch.clamp(p, min=0, out=s)
            torch.matmul(p.to(mt), v[c], out=out[c])
        if dropout_p > 0:
            out.mul_(keep_scale(dropout_p))
        ctx.save_for_backward(q, k, v, pos_k, pos_q, idx, probs)
        ctx.scale, ctx.dropout_p = scale, dropout_p
        return out

    @staticmethod
    def backward(ctx, dout):
        with torch.autocast(dout.device.type, enabled=False):
            return DisentangledAttention._backward(ctx, dout)

    @staticmethod
    def _backward(ctx, dout):
        q, k, v, pos_k, pos_q, idx, probs = ctx.saved_tensors  # q, pos_q pre-scaled; probs signed
        scale, dropout_p = ctx.scale, ctx.dropout_p
        mt, st = q.dtype, probs.dtype  # matmul and softmax dtypes, as in forward
        dout = dout.to(mt).contiguous()
        (B, H, Q, _), T = q.shape, k.size(2)
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        dpos_k = torch.zeros_like(pos_k, dtype=st) if pos_k is not None else None  # summed over chunks
        dpos_q = torch.zeros_like(pos_q, dtype=st) if pos_q is not None else None
        c2p_flat, p2c_flat = flat_index(idx, T, pos_k, pos_q)
        if dropout_p > 0:
            dout = dout * keep_scale(dropout_p)
        for c in DisentangledAttention._chunks(B, H, Q, T):
            qc, kc, vc, doc = q[c], k[c], v[c], dout[c]
            b = qc.size(0)
            # With kept = p * mask: dv = kept^T dout; d(kept) = dout v^T; the softmax backward is
            # ds = p * (dp - rowsum(p * dp)) with dp = mask * d(kept), so p * dp = kept * d(kept).
            kept = probs[c].clamp(min=0) if dropout_p > 0 else probs[c]  # (b, H, Q, T) in st
            torch.matmul(kept.to(mt).transpose(-1, -2), doc, out=dv[c])
            ds = torch.matmul(doc, vc.transpose(-1, -2))  # (b, H, Q, T) d(kept), in mt
            ds = ds.mul_(kept) if mt == st else torch.mul(ds, kept)  # p * dp, in st
            delta = ds.sum(-1, keepdim=True)  # (b, H, Q, 1)
            p = torch.abs(probs[c], out=kept) if dropout_p > 0 else probs[c]
            ds = torch.addcmul(ds, p, delta, value=-1, out=ds)  # grad of the (scaled) scores, in st
            dsm = ds.to(mt)
            torch.matmul(dsm, kc, out=dq[c])
            torch.matmul(dsm.transpose(-1, -2), qc, out=dk[c])
            if pos_k is not None:  # c2p: add the score grads back onto the relative rows (flat index_add_)
                R = pos_k.size(2)
                g = ds.new_zeros(b, H, Q * R).index_add_(-1, c2p_flat, ds.view(b, H, Q * T)).view(b, H, Q, R)
                g = g.to(mt)
                dq[c] += torch.matmul(g, pos_k)
                dpos_k += torch.matmul(g.transpose(-1, -2), qc).sum(0, keepdim=True)
            if pos_q is not None:  # p2c, along the row axis
                R = pos_q.size(2)
                g = ds.new_zeros(b, H, R * T).index_add_(-1, p2c_flat, ds.view(b, H, Q * T)).view(b, H, R, T)
                g = g.to(mt)
                dk[c] += torch.matmul(g.transpose(-1, -2), pos_q)
                dpos_q += torch.matmul(g, kc).sum(0, keepdim=True)
        dq.mul_(scale)  # q was pre-scaled; d(q_scaled)/dq = scale
        if dpos_q is not None:
            dpos_q.mul_(scale)
        grads = (dq, dk, dv, dpos_k, dpos_q)
        return (*(g if g is None else g.to(d) for g, d in zip(grads, ctx.dtypes)), None, None, None, None)


# ----------------------------------------------------------------------------------------------------------
# Feed-forward


class FeedForward(torch.autograd.Function):
    """act(x W1^T + b1) W2^T + b2, keeping x and the pre-activation for backward but not act()'s output.

    Autograd would keep both (B, T, intermediate) tensors (4x the hidden size each); recomputing act() in
    backward is one elementwise pass and saves the larger half of a layer's activations. Under autocast it
    computes in the autocast dtype, as nn.Linear does, and returns gradients in the parameters' dtype.
    """

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2, act):
        device = x.device.type
        dt = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
        ctx.dtypes = [t.dtype for t in (x, w1, b1, w2, b2)]
        with torch.autocast(device, enabled=False):
            x, w1, b1, w2, b2 = (t.to(dt) for t in (x, w1, b1, w2, b2))
            h = F.linear(x, w1, b1)  # (B, T, I) pre-activation
            out = F.linear(act(h), w2, b2)  # (B, T, C)
        ctx.save_for_backward(x, h, w1, w2)
        ctx.act = act
        return out

    @staticmethod
    def backward(ctx, dout):
        x, h, w1, w2 = ctx.saved_tensors
        need = ctx.needs_input_grad
        with torch.autocast(dout.device.type, enabled=False):
            dout = dout.to(h.dtype)
            with torch.enable_grad():
                h = h.detach().requires_grad_()
                a = ctx.act(h)
            (dh,) = torch.autograd.grad(a, h, dout @ w2)  # (B, T, I)
            flat = lambda t: t.reshape(-1, t.size(-1))  # noqa: E731  (B, T, N) -> (B*T, N)
            grads = (
                dh @ w1 if need[0] else None,
                flat(dh).t() @ flat(x) if need[1] else None,
                flat(dh).sum(0) if need[2] else None,
                flat(dout).t() @ flat(a.detach()) if need[3] else None,
                flat(dout).sum(0) if need[4] else None,
            )
        return (*(g if g is None else g.to(d) for g, d in zip(grads, ctx.dtypes)), None)
