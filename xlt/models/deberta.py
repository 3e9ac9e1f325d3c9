"""Native DeBERTa (v1, v2, v3, mDeBERTa-v3) in plain PyTorch: the whole model is in this file, top to bottom.
Beside it: deberta_config.py (DebertaConfig, the typed config read from config.json) and deberta_kernels.py
(the hand-written autograd Functions and dropout masks).

References:
  - He, Liu, Gao, Chen. "DeBERTa: Decoding-enhanced BERT with Disentangled Attention". ICLR 2021.
    arXiv:2006.03654 (v1: disentangled content/position attention; v2 appendix: nGiE convolution, log
    buckets, shared position/content projections).
  - He, Gao, Chen. "DeBERTaV3: Improving DeBERTa using ELECTRA-Style Pre-Training with Gradient-Disentangled
    Embedding Sharing". ICLR 2023. arXiv:2111.09543 (v3 and mDeBERTa-v3: the v2 encoder without the conv).
  - transformers 5.24 `models/deberta/modeling_deberta.py` and `models/deberta_v2/modeling_deberta_v2.py`:
    parameter names and numerics. tests/test_deberta_parity.py checks outputs, logits and gradients against
    transformers (5.23 and 5.24) on every config switch.

Reading order: relative positions, embeddings, disentangled attention, layer, encoder, DebertaModel, heads.
Depends on torch only (and its two siblings, which depend on torch only).

Attention. For query i and key j with relative-position row r = idx[i, j] (one (T, T) index map per
forward, cached per (length, device)):

    score[i, j] = (q_i.k_j + q_i.Pk_r + k_j.Pq_r) / sqrt(head_dim * (1 + number of position terms))

c2p (q.Pk) and p2c (Pq.k) are matmuls of q/k against the relative rows (1, H, R, D), broadcast over the
batch (never repeated), followed by one gather each with the same index map (c2p along keys, p2c along
rows). Only the rows the index map reads are projected (R = 255 instead of 512 at T = 128 for mDeBERTa);
with share_att_key the token and relative-row projections are one fused q|k|v matmul.

Kernels (deberta_kernels.py): `disentangled_attention` computes the softmax of those scores with one SDPA
call for inference and a hand-written autograd Function for training; `FeedForward` recomputes the
activation in backward; `Dropout` draws cheaper masks. Gradient checkpointing (torch.utils.checkpoint per
layer): `model.gradient_checkpointing_enable()` or the constructor's `gradient_checkpointing=True`.

Masking. Padded keys are masked for every query. transformers also masks padded *query* rows (they then
attend uniformly to everything); outputs at padded positions are therefore not comparable and carry no
meaning in either implementation. Outputs at real tokens are identical (parity-tested).

Beyond 512 tokens.
  - position_biased_input=True (absolute position table, v1 only in practice): sequences longer than
    max_position_embeddings raise ValueError (transformers fails with an index error).
  - Relative positions are clamped, exactly as transformers: v1 (no buckets) clamps |i - j| at
    max_relative_positions; v2/v3 log-bucket distances up to max_relative_positions and clamp to the outermost
    bucket (mdeberta-v3-base: 256 buckets, distances >= 511 all share bucket 255). So v2/v3 checkpoints run on
    any length with a defined meaning (far tokens look equally far), though they were pretrained on <= 512.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from xlt.models.deberta_config import ACTIVATIONS, DebertaConfig
from xlt.models.deberta_kernels import Dropout, FeedForward, disentangled_attention
from xlt.models.deberta_kernels import DisentangledAttention, disentangled_bias, dropout_mask  # noqa: F401 (re-export)

# ----------------------------------------------------------------------------------------------------------
# Relative positions


def log_bucket_position(rel: torch.Tensor, bucket_size: int, max_position: int) -> torch.Tensor:
    """transformers' make_log_bucket_position: exact within +-bucket_size/2, log-spaced beyond. Odd in rel."""
    sign = torch.sign(rel)
    mid = bucket_size // 2
    abs_pos = torch.where((rel < mid) & (rel > -mid), torch.tensor(mid - 1).type_as(rel), torch.abs(rel))
    log_pos = torch.ceil(torch.log(abs_pos / mid) / torch.log(torch.tensor((max_position - 1) / mid))
                         * (mid - 1)) + mid
    return torch.where(abs_pos <= mid, rel.type_as(log_pos), log_pos * sign).long()


def relative_index(length: int, cfg: DebertaConfig, device: torch.device) -> tuple[torch.Tensor, int, int]:
    """Row of the relative-embedding table for every (query i, key j): idx (T, T), rows lo..hi used.

    Returns idx - lo, so attention only projects the rows it reads: rel_embeddings[lo:hi + 1].
    v1 slices its table to span = min(T, max_relative_positions) rows either side of the centre; v2/v3 use
    the whole table (2 * att_span rows). Both clamp to the table, exactly as transformers.
    """
    pos = torch.arange(length, dtype=torch.long, device=device)
    rel = pos[:, None] - pos[None, :]  # (T, T) i - j
    if cfg.version == 1:
        span = min(length, cfg.max_relative_positions)
        idx = torch.clamp(rel + span, 0, 2 * span - 1) + (cfg.max_relative_positions - span)
    else:
        span = cfg.att_span
        if cfg.position_buckets > 0:
            rel = log_bucket_position(rel, cfg.position_buckets, cfg.max_relative_positions)
        idx = torch.clamp(rel + span, 0, 2 * span - 1)
    lo, hi = int(idx.min()), int(idx.max())
    return (idx - lo).contiguous(), lo, hi


# ----------------------------------------------------------------------------------------------------------
# Embeddings


class DebertaEmbeddings(nn.Module):
    def __init__(self, cfg: DebertaConfig):
        super().__init__()
        self.cfg = cfg
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.embedding_size, padding_idx=cfg.pad_token_id)
        if cfg.position_biased_input:
            self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.embedding_size)
        if cfg.type_vocab_size > 0:
            self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.embedding_size)
        if cfg.embedding_size != cfg.hidden_size:
            self.embed_proj = nn.Linear(cfg.embedding_size, cfg.hidden_size, bias=False)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = Dropout(cfg.hidden_dropout_prob)

    def forward(self, input_ids, mask, token_type_ids=None):
        # input_ids, mask, token_type_ids: (B, T)
        x = self.word_embeddings(input_ids)  # (B, T, E)
        if self.cfg.position_biased_input:
            T = input_ids.size(1)
            if T > self.cfg.max_position_embeddings:
                raise ValueError(f"sequence length {T} exceeds max_position_embeddings "
                                 f"{self.cfg.max_position_embeddings} of this absolute-position model")
            x = x + self.position_embeddings.weight[:T]
        if self.cfg.type_vocab_size > 0:
            if token_type_ids is None:
                x = x + self.token_type_embeddings.weight[0]
            else:
                x = x + self.token_type_embeddings(token_type_ids)
        if self.cfg.embedding_size != self.cfg.hidden_size:
            x = self.embed_proj(x)  # (B, T, C)
        x = self.LayerNorm(x)
        x = x * mask.unsqueeze(-1).to(x.dtype)  # padded positions are zero from here on
        return self.dropout(x)


# ----------------------------------------------------------------------------------------------------------
# Disentangled attention


class DisentangledSelfAttention(nn.Module):
    """Content-content plus c2p/p2c position terms. v1: fused interleaved in_proj, q_bias, v_bias,
    pos_proj (c2p), pos_q_proj (p2c). v2/v3: query/key/value_proj, pos_key_proj/pos_query_proj unless
    share_att_key."""

    def __init__(self, cfg: DebertaConfig):
        super().__init__()
        self.cfg = cfg
        C, HD = cfg.hidden_size, cfg.num_attention_heads * cfg.head_dim
        self.c2p = cfg.relative_attention and "c2p" in cfg.pos_att_type
        self.p2c = cfg.relative_attention and "p2c" in cfg.pos_att_type
        if cfg.version == 1:
            self.in_proj = nn.Linear(C, 3 * HD, bias=False)  # per head: [q | k | v] interleaved
            self.q_bias = nn.Parameter(torch.zeros(HD))
            self.v_bias = nn.Parameter(torch.zeros(HD))
            if self.c2p:
                self.pos_proj = nn.Linear(C, HD, bias=False)
            if self.p2c:
                self.pos_q_proj = nn.Linear(C, HD)
        else:
            self.query_proj = nn.Linear(C, HD)
            self.key_proj = nn.Linear(C, HD)
            self.value_proj = nn.Linear(C, HD)
            if not cfg.share_att_key:
                if self.c2p:
                    self.pos_key_proj = nn.Linear(C, HD)
                if self.p2c:
                    self.pos_query_proj = nn.Linear(C, HD)
        if cfg.relative_attention:
            self.pos_dropout = Dropout(cfg.hidden_dropout_prob)
        self.dropout_p = cfg.attention_probs_dropout_prob
        self.scale = 1.0 / math.sqrt(cfg.head_dim * cfg.scale_factor)

    def _heads(self, x):  # (B, T, H*D) -> (B, H, T, D)
        B, T, _ = x.shape
        return x.view(B, T, self.cfg.num_attention_heads, -1).transpose(1, 2)

    def qkv(self, x):
        if self.cfg.version == 1:
            H, D = self.cfg.num_attention_heads, self.cfg.head_dim
            q, k, v = self._heads(self.in_proj(x)).split(D, dim=-1)  # each (B, H, T, D)
            q = q + self.q_bias.view(1, H, 1, D).to(q.dtype)
            v = v + self.v_bias.view(1, H, 1, D).to(v.dtype)
            return q, k, v
        return self._heads(self.query_proj(x)), self._heads(self.key_proj(x)), self._heads(self.value_proj(x))

    def position_projections(self, rel):
        """rel (R, C) -> pos_k, pos_q, each (1, H, R, D) or None."""
        rel = rel.unsqueeze(0)  # (1, R, C)
        if self.cfg.version == 1:
            pos_k = self._heads(self.pos_proj(rel)) if self.c2p else None
            pos_q = self._heads(self.pos_q_proj(rel)) if self.p2c else None
        elif self.cfg.share_att_key:
            pos_k = self._heads(self.key_proj(rel)) if self.c2p else None
            pos_q = self._heads(self.query_proj(rel)) if self.p2c else None
        else:
            pos_k = self._heads(self.pos_key_proj(rel)) if self.c2p else None
            pos_q = self._heads(self.pos_query_proj(rel)) if self.p2c else None
        return pos_k, pos_q

    def shared_projections(self, x, rel):
        """v2/v3 with share_att_key: tokens and relative rows through ONE fused q|k|v matmul.

        x (B, T, C), rel (R, C) or None -> q, k, v (B, H, T, D) and pos_k, pos_q (1, H, R, D) or None.
        One matmul instead of five (the v columns of the R rows are wasted work, ~R/(3 B T) of the QKV FLOPs).
        """
        B, T, C = x.shape
        H, D = self.cfg.num_attention_heads, self.cfg.head_dim
        w = torch.cat([self.query_proj.weight, self.key_proj.weight, self.value_proj.weight])  # (3HD, C)
        b = torch.cat([self.query_proj.bias, self.key_proj.bias, self.value_proj.bias])
        inp = x.reshape(B * T, C)
        if rel is not None:
            inp = torch.cat([inp, rel.to(inp.dtype)])  # (B*T + R, C)
        y = F.linear(inp, w, b)  # (B*T [+ R], 3HD)
        q, k, v = y[:B * T].view(B, T, 3, H, D).permute(2, 0, 3, 1, 4)  # each (B, H, T, D)
        pos_k = pos_q = None
        if rel is not None:
            pr = y[B * T:].view(1, -1, 3, H, D).permute(2, 0, 3, 1, 4)  # (3, 1, H, R, D)
            pos_q = pr[0] if self.p2c else None
            pos_k = pr[1] if self.c2p else None
        return q, k, v, pos_k, pos_q

    def forward(self, x, key_bias, rel=None, idx=None, queries=None):
        # x (B, T, C); key_bias (B, 1, 1, T) additive padding mask; rel (R, C) relative rows; idx (T, T);
        # queries: attend from the first `queries` positions only (all keys), e.g. 1 for [CLS]
        B, T, _ = x.shape
        use_rel = self.c2p or self.p2c
        if self.cfg.version == 2 and (self.cfg.share_att_key or not use_rel):
            q, k, v, pos_k, pos_q = self.shared_projections(x, self.pos_dropout(rel) if use_rel else None)
        else:
            q, k, v = self.qkv(x)  # (B, H, T, D)
            pos_k = pos_q = None
            if use_rel:
                pos_k, pos_q = self.position_projections(self.pos_dropout(rel))  # (1, H, R, D)
        if queries is not None:
            q, idx = q[:, :, :queries], idx[:queries] if idx is not None else None  # (B, H, Q, D), (Q, T)
        dropout_p = self.dropout_p if self.training else 0.0
        out = disentangled_attention(q, k, v, pos_k, pos_q, idx, key_bias, self.scale, dropout_p)  # (B, H, Q, D)
        return out.transpose(1, 2).reshape(B, q.size(2), -1)  # (B, Q, H*D)


class DebertaSelfOutput(nn.Module):
    def __init__(self, cfg: DebertaConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.num_attention_heads * cfg.head_dim, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = Dropout(cfg.hidden_dropout_prob)

    def forward(self, x, residual):
        return self.add_norm(self.dense(x), residual)

    def add_norm(self, h, residual):  # dropout, residual, LayerNorm: what follows the dense
        return self.LayerNorm(self.dropout(h) + residual)


class DebertaAttention(nn.Module):
    def __init__(self, cfg: DebertaConfig):
        super().__init__()
        self.self = DisentangledSelfAttention(cfg)
        self.output = DebertaSelfOutput(cfg)

    def forward(self, x, key_bias, rel=None, idx=None, queries=None):
        return self.output(self.self(x, key_bias, rel, idx, queries), x if queries is None else x[:, :queries])


# ----------------------------------------------------------------------------------------------------------
# Layer and encoder


class DebertaIntermediate(nn.Module):  # parameters only: DebertaLayer runs them through FeedForward
    def __init__(self, cfg: DebertaConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.act = ACTIVATIONS[cfg.hidden_act]


class DebertaOutput(DebertaSelfOutput):  # its dense is run by FeedForward, then add_norm
    def __init__(self, cfg: DebertaConfig):
        super().__init__(cfg)
        self.dense = nn.Linear(cfg.intermediate_size, cfg.hidden_size)


class DebertaLayer(nn.Module):
    def __init__(self, cfg: DebertaConfig):
        super().__init__()
        self.attention = DebertaAttention(cfg)
        self.intermediate = DebertaIntermediate(cfg)
        self.output = DebertaOutput(cfg)

    def forward(self, x, key_bias, rel=None, idx=None, queries=None):
        a = self.attention(x, key_bias, rel, idx, queries)  # (B, T or queries, C)
        up, down = self.intermediate.dense, self.output.dense
        h = FeedForward.apply(a, up.weight, up.bias, down.weight, down.bias, self.intermediate.act)
        return self.output.add_norm(h, a)


class ConvLayer(nn.Module):
    """v2's nGiE: a 1-D convolution over the embeddings, added to the first layer's output."""

    def __init__(self, cfg: DebertaConfig):
        super().__init__()
        k = cfg.conv_kernel_size
        self.conv = nn.Conv1d(cfg.hidden_size, cfg.hidden_size, k, padding=(k - 1) // 2, groups=cfg.conv_groups)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = Dropout(cfg.hidden_dropout_prob)
        self.act = ACTIVATIONS[cfg.conv_act]

    def forward(self, emb, layer_out, mask):
        # emb, layer_out (B, T, C); mask (B, T)
        m = mask.unsqueeze(-1).to(layer_out.dtype)  # (B, T, 1)
        out = self.conv(emb.transpose(1, 2)).transpose(1, 2) * m  # (B, T, C)
        out = self.LayerNorm(layer_out + self.act(self.dropout(out)))
        return out * m


class DebertaEncoder(nn.Module):
    def __init__(self, cfg: DebertaConfig):
        super().__init__()
        self.cfg = cfg
        self.layer = nn.ModuleList(DebertaLayer(cfg) for _ in range(cfg.num_hidden_layers))
        if cfg.relative_attention:
            self.rel_embeddings = nn.Embedding(2 * cfg.att_span, cfg.hidden_size)
        if cfg.norm_rel_ebd:
            self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        if cfg.conv_kernel_size > 0:
            self.conv = ConvLayer(cfg)
        self.gradient_checkpointing = False
        self._rel_cache: dict[tuple[int, str], tuple[torch.Tensor, int, int]] = {}

    def relative_index(self, length: int, device: torch.device):
        key = (length, str(device))
        if key not in self._rel_cache:
            # Built as a normal tensor even under inference_mode: an inference tensor in the cache would
            # make the next training step fail ("Inference tensors cannot be saved for backward").
            with torch.inference_mode(False):
                self._rel_cache[key] = relative_index(length, self.cfg, device)
        return self._rel_cache[key]

    def forward(self, x, mask, last_layer_queries=None, output_layer=-1):
        # x (B, T, C) embeddings; mask (B, T) 1 = token, 0 = padding. last_layer_queries=n: the last layer
        # computes only the first n positions (B, n, C); the layers below still need every position.
        # output_layer: -1 the last layer's output; k the output of layer k (0 = the embeddings; the layers
        # above k are not computed); None every layer's output stacked (L + 1, B, T, C), embeddings first.
        B, T, _ = x.shape
        key_bias = None  # additive padding mask (B, 1, 1, T); None when nothing is padded
        if not bool(mask.bool().all()):
            key_bias = torch.zeros(B, 1, 1, T, dtype=torch.float32, device=x.device)
            key_bias.masked_fill_(~mask.bool().view(B, 1, 1, T), torch.finfo(torch.float32).min)
        rel = idx = None
        if self.cfg.relative_attention:
            idx, lo, hi = self.relative_index(T, x.device)
            rel = self.rel_embeddings.weight[lo:hi + 1]  # (R, C)
            if self.cfg.norm_rel_ebd:
                rel = self.LayerNorm(rel)
        emb = x
        last = len(self.layer) - 1
        stop = len(self.layer) if output_layer is None or output_layer == -1 else output_layer
        states = [x]
        for i, layer in enumerate(self.layer[:stop]):
            conv_next = i == 0 and self.cfg.conv_kernel_size > 0  # the conv needs every position
            queries = last_layer_queries if i == last and not conv_next else None
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(layer, x, key_bias, rel, idx, queries, use_reentrant=False)
            else:
                x = layer(x, key_bias, rel, idx, queries)
            if conv_next:
                x = self.conv(emb, x, mask)
            if output_layer is None:
                states.append(x)
        return torch.stack(states) if output_layer is None else x  # (L + 1, B, T, C) or (B, T, C)


# ----------------------------------------------------------------------------------------------------------
# Model and heads


class DebertaPreTrained(nn.Module):
    """Shared init and gradient-checkpointing switch. Weights start like transformers' _init_weights:
    Linear/Embedding normal(0, initializer_range), zero biases, padding row zero, LayerNorm (1, 0)."""

    def init_weights(self, module: nn.Module) -> None:
        std = self.cfg.initializer_range
        for m in module.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=std)
                if m.padding_idx is not None:
                    m.weight.data[m.padding_idx].zero_()
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, DisentangledSelfAttention) and m.cfg.version == 1:
                nn.init.zeros_(m.q_bias)
                nn.init.zeros_(m.v_bias)

    def gradient_checkpointing_enable(self, enable: bool = True) -> None:
        """Recompute each layer in backward (torch.utils.checkpoint) instead of keeping its activations."""
        for m in self.modules():
            if isinstance(m, DebertaEncoder):
                m.gradient_checkpointing = enable


class DebertaModel(DebertaPreTrained):
    """The encoder: forward(input_ids, attention_mask, token_type_ids) -> hidden states (B, T, C)."""

    def __init__(self, cfg: DebertaConfig, gradient_checkpointing: bool = False):
        super().__init__()
        self.cfg = cfg
        self.embeddings = DebertaEmbeddings(cfg)
        self.encoder = DebertaEncoder(cfg)
        self.init_weights(self)
        self.gradient_checkpointing_enable(gradient_checkpointing)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, last_layer_queries=None,
                output_layer=-1):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        x = self.embeddings(input_ids, attention_mask, token_type_ids)  # (B, T, C)
        return self.encoder(x, attention_mask, last_layer_queries, output_layer)


class DebertaHiddenStates(DebertaPreTrained):
    """The encoder's hidden states, for types that use no classifier (retrieval): one layer's (B, T, C)
    (`output_layer` k: the output of layer k, 0 = the embeddings, -1 = the last), or every layer's stacked
    (L + 1, B, T, C) with `output_layer=None`."""

    def __init__(self, cfg: DebertaConfig, gradient_checkpointing: bool = False, output_layer: int | None = -1):
        super().__init__()
        self.cfg = cfg
        self.deberta = DebertaModel(cfg, gradient_checkpointing)
        self.output_layer = output_layer

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        return self.deberta(input_ids, attention_mask, token_type_ids, output_layer=self.output_layer)


class DebertaForSequenceClassification(DebertaPreTrained):
    """[CLS] -> dropout -> pooler.dense -> activation -> dropout -> classifier; returns logits (B, num_labels)."""

    def __init__(self, cfg: DebertaConfig, gradient_checkpointing: bool = False):
        super().__init__()
        self.cfg = cfg
        self.deberta = DebertaModel(cfg, gradient_checkpointing)
        self.pooler = ContextPooler(cfg)
        self.classifier = nn.Linear(cfg.pooler_hidden_size, cfg.num_labels)
        self.dropout = Dropout(cfg.cls_dropout)
        self.init_weights(self.pooler)
        self.init_weights(self.classifier)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        # Only [CLS] reaches the pooler, so the last layer computes [CLS] alone (same logits, ~1/12 less work)
        h = self.deberta(input_ids, attention_mask, token_type_ids, last_layer_queries=1)  # (B, 1, C)
        return self.classifier(self.dropout(self.pooler(h)))  # (B, num_labels)


class ContextPooler(nn.Module):
    def __init__(self, cfg: DebertaConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.pooler_hidden_size, cfg.pooler_hidden_size)
        self.dropout = Dropout(cfg.pooler_dropout)
        self.act = ACTIVATIONS[cfg.pooler_hidden_act]

    def forward(self, h):
        return self.act(self.dense(self.dropout(h[:, 0])))  # (B, C)


class DebertaForTokenClassification(DebertaPreTrained):
    """Per-token logits (B, T, num_labels): dropout -> classifier on every hidden state."""

    def __init__(self, cfg: DebertaConfig, gradient_checkpointing: bool = False):
        super().__init__()
        self.cfg = cfg
        self.deberta = DebertaModel(cfg, gradient_checkpointing)
        self.dropout = Dropout(cfg.hidden_dropout_prob)
        self.classifier = nn.Linear(cfg.hidden_size, cfg.num_labels)
        self.init_weights(self.classifier)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        return self.classifier(self.dropout(self.deberta(input_ids, attention_mask, token_type_ids)))


class DebertaForQuestionAnswering(DebertaPreTrained):
    """Span logits (B, T, 2): [..., 0] start, [..., 1] end (transformers' qa_outputs, num_labels=2)."""

    def __init__(self, cfg: DebertaConfig, gradient_checkpointing: bool = False):
        super().__init__()
        self.cfg = cfg
        self.deberta = DebertaModel(cfg, gradient_checkpointing)
        self.qa_outputs = nn.Linear(cfg.hidden_size, cfg.num_labels)
        self.init_weights(self.qa_outputs)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        return self.qa_outputs(self.deberta(input_ids, attention_mask, token_type_ids))
