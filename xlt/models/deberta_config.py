"""DebertaConfig: every architecture switch of DeBERTa v1/v2/v3, read from (and written back to) a
transformers config.json. `DebertaConfig.from_hf` is the only place in xlt that interprets the hub's quirks
(`"p2c|c2p"`, `max_relative_positions=-1`, `position_buckets=-1`, missing keys with per-version defaults), so
the model code (deberta.py) reads resolved, typed fields only. Depends on torch only (for the activations).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

# transformers' ACT2FN names we support; "gelu" is the exact erf GELU there too.
ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "tanh": torch.tanh,
    "silu": F.silu,
    "swish": F.silu,
}
POSITION_TERMS = ("c2p", "p2c")


@dataclass(frozen=True)
class DebertaConfig:
    """Every architecture switch, resolved. Build with `DebertaConfig.from_hf(config_json_dict)`."""

    version: int  # 1 = model_type "deberta"; 2 = "deberta-v2" (v2 with conv, v3 and mDeBERTa-v3 without)
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    head_dim: int  # attention_head_size; hidden_size // heads unless the config says otherwise (v2 only)
    embedding_size: int  # width of the word embeddings; != hidden_size adds embeddings.embed_proj
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 0  # 0: no token_type_embeddings at all (v3); token_type_ids are then ignored
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-7
    pad_token_id: int | None = 0
    position_biased_input: bool = True  # absolute position embeddings added to the input (v1 style)
    relative_attention: bool = False
    pos_att_type: tuple[str, ...] = ()  # subset of ("c2p", "p2c"), in config order
    max_relative_positions: int = 512  # resolved: the hub's -1 means max_position_embeddings
    position_buckets: int = 0  # log buckets (v2/v3); 0 = none (the hub's -1)
    norm_rel_ebd: bool = False  # LayerNorm on the relative embeddings ("layer_norm" in norm_rel_ebd)
    share_att_key: bool = False  # position projections reuse query_proj/key_proj (v3)
    conv_kernel_size: int = 0  # nGiE convolution beside the first layer (v2); 0 = none
    conv_groups: int = 1
    conv_act: str = "tanh"  # transformers' default when conv_act is missing
    pooler_hidden_size: int = 0  # resolved to hidden_size when missing
    pooler_dropout: float = 0.0
    pooler_hidden_act: str = "gelu"
    cls_dropout: float = 0.1  # resolved: missing/None -> hidden_dropout_prob
    id2label: tuple[str, ...] = ("LABEL_0", "LABEL_1")  # label names in id order; len() = num_labels
    extra: dict = field(default_factory=dict, compare=False, hash=False, repr=False)  # other config.json keys

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @property
    def att_span(self) -> int:
        """Half the number of relative-embedding rows: buckets (v2/v3) or max_relative_positions."""
        if self.version == 2 and self.position_buckets > 0:
            return self.position_buckets
        return self.max_relative_positions

    @property
    def scale_factor(self) -> int:
        return 1 + len(self.pos_att_type)

    @classmethod
    def from_hf(cls, cfg: dict) -> "DebertaConfig":
        """Interpret a transformers config.json dict, hub quirks included. Raises ValueError on what we
        cannot build (unknown model_type, activation or pos_att_type, talking heads)."""
        model_type = cfg.get("model_type")
        if model_type not in ("deberta", "deberta-v2"):
            raise ValueError(f"model_type {model_type!r} is not DeBERTa ('deberta' or 'deberta-v2')")
        version = 1 if model_type == "deberta" else 2
        hidden = cfg.get("hidden_size", 768 if version == 1 else 1536)
        heads = cfg.get("num_attention_heads", 12 if version == 1 else 24)
        head_dim = (cfg.get("attention_head_size") if version == 2 else None) or hidden // heads
        if version == 1 and hidden % heads:
            raise ValueError(f"hidden_size {hidden} is not a multiple of num_attention_heads {heads}")
        pos = cfg.get("pos_att_type") or ()
        if isinstance(pos, str):  # "p2c|c2p" on the hub, a list in transformers >= 4.x configs
            pos = [p.strip() for p in pos.lower().split("|") if p.strip()]
        pos = tuple(pos)
        unknown = [p for p in pos if p not in POSITION_TERMS]
        if unknown:
            raise ValueError(f"pos_att_type {unknown} not supported (only c2p and p2c)")
        if cfg.get("talking_head"):
            raise ValueError("talking_head=True is not supported (no released checkpoint uses it)")
        max_pos = cfg.get("max_position_embeddings", 512)
        max_rel = cfg.get("max_relative_positions", -1)
        if max_rel is None or max_rel < 1:
            max_rel = max_pos
        hidden_dropout = cfg.get("hidden_dropout_prob", 0.1)
        cls_dropout = cfg.get("cls_dropout")
        if "id2label" in cfg:
            id2label = tuple(str(v) for _, v in sorted(cfg["id2label"].items(), key=lambda kv: int(kv[0])))
        else:
            id2label = tuple(f"LABEL_{i}" for i in range(cfg.get("num_labels", 2)))
        v2 = version == 2  # v1 ignores the v2-only switches, as transformers does
        buckets = cfg.get("position_buckets", -1) if v2 else -1
        norm_rel = cfg.get("norm_rel_ebd", "none") if v2 else "none"
        out = cls(
            version=version,
            vocab_size=cfg.get("vocab_size", 50265 if version == 1 else 128100),
            hidden_size=hidden,
            num_hidden_layers=cfg.get("num_hidden_layers", 12 if version == 1 else 24),
            num_attention_heads=heads,
            intermediate_size=cfg.get("intermediate_size", 3072 if version == 1 else 6144),
            head_dim=head_dim,
            embedding_size=cfg.get("embedding_size") or hidden,
            hidden_act=cfg.get("hidden_act", "gelu"),
            hidden_dropout_prob=hidden_dropout,
            attention_probs_dropout_prob=cfg.get("attention_probs_dropout_prob", 0.1),
            max_position_embeddings=max_pos,
            type_vocab_size=cfg.get("type_vocab_size", 0) or 0,
            initializer_range=cfg.get("initializer_range", 0.02),
            layer_norm_eps=cfg.get("layer_norm_eps", 1e-7),
            pad_token_id=cfg.get("pad_token_id", 0),
            position_biased_input=cfg.get("position_biased_input", True),
            relative_attention=cfg.get("relative_attention", False),
            pos_att_type=pos,
            max_relative_positions=max_rel,
            position_buckets=buckets if buckets and buckets > 0 else 0,
            norm_rel_ebd="layer_norm" in [x.strip() for x in str(norm_rel).lower().split("|")],
            share_att_key=bool(cfg.get("share_att_key", False)) if v2 else False,
            conv_kernel_size=(cfg.get("conv_kernel_size", 0) or 0) if v2 else 0,
            conv_groups=cfg.get("conv_groups", 1) if v2 else 1,
            conv_act=cfg.get("conv_act", "tanh") if v2 else "tanh",
            pooler_hidden_size=cfg.get("pooler_hidden_size") or hidden,
            pooler_dropout=cfg.get("pooler_dropout", 0.0),
            pooler_hidden_act=cfg.get("pooler_hidden_act", "gelu"),
            cls_dropout=hidden_dropout if cls_dropout is None else cls_dropout,
            id2label=id2label,
            extra={k: v for k, v in cfg.items() if k not in _HF_KEYS},
        )
        for act in (out.hidden_act, out.pooler_hidden_act) + ((out.conv_act,) if out.conv_kernel_size else ()):
            if act not in ACTIVATIONS:
                raise ValueError(f"activation {act!r} not supported (known: {', '.join(ACTIVATIONS)})")
        if out.pooler_hidden_size != hidden:
            raise ValueError(f"pooler_hidden_size {out.pooler_hidden_size} != hidden_size {hidden}")
        return out

    def to_hf(self) -> dict:
        """config.json keys in transformers' format (architectures are added by the saver)."""
        out = dict(self.extra)
        out.update(
            model_type="deberta" if self.version == 1 else "deberta-v2",
            vocab_size=self.vocab_size, hidden_size=self.hidden_size, num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads, intermediate_size=self.intermediate_size,
            hidden_act=self.hidden_act, hidden_dropout_prob=self.hidden_dropout_prob,
            attention_probs_dropout_prob=self.attention_probs_dropout_prob,
            max_position_embeddings=self.max_position_embeddings, type_vocab_size=self.type_vocab_size,
            initializer_range=self.initializer_range, layer_norm_eps=self.layer_norm_eps,
            pad_token_id=self.pad_token_id, position_biased_input=self.position_biased_input,
            relative_attention=self.relative_attention, pos_att_type=list(self.pos_att_type),
            max_relative_positions=self.max_relative_positions, pooler_hidden_size=self.pooler_hidden_size,
            pooler_dropout=self.pooler_dropout, pooler_hidden_act=self.pooler_hidden_act,
            cls_dropout=self.cls_dropout, embedding_size=self.embedding_size,
            id2label={str(i): n for i, n in enumerate(self.id2label)},
            label2id={n: i for i, n in enumerate(self.id2label)},
        )
        if self.version == 2:
            out.update(
                attention_head_size=self.head_dim, position_buckets=self.position_buckets or -1,
                norm_rel_ebd="layer_norm" if self.norm_rel_ebd else "none", share_att_key=self.share_att_key,
                conv_kernel_size=self.conv_kernel_size, conv_groups=self.conv_groups, conv_act=self.conv_act)
        return out


_HF_KEYS = set(DebertaConfig.__dataclass_fields__) | {
    "model_type", "attention_head_size", "num_labels", "label2id", "architectures", "transformers_version",
    "torch_dtype", "dtype", "talking_head"}
