"""Sentence embeddings from one layer's hidden states, as XTREME's retrieval scripts make them.

XTREME (google-research/xtreme `third_party/run_retrieval.py`, `evaluate_retrieval.py`) embeds a sentence as
one layer's hidden states pooled over the sentence:

- `mean` (`mean_pool_embedding`): the average over every non-padding position, [CLS] and [SEP] included
  (the pool mask is the attention mask unless `--pool_skip_special_token`, which no script passes);
- `cls` (`cls_pool_embedding`): the first position.

The layer is `all_layer_outputs[-num_layers:][specific_layer]`: the embedding output is dropped, so
`--specific_layer 7` is the output of the 8th transformer layer, `hidden_states[8]` in transformers' counting
(0 = embeddings). `scripts/run_tatoeba.sh` uses 7 for 12-layer models and 13 (hidden_states[14]) for XLM-R's
24 layers; `scripts/run_bucc2018.sh` uses 7 for every model. `default_layer` reads such a table (it lives in
the task file) and, for a depth the table lacks, takes `num_layers // 2 + 2`, the one rule that gives both of
run_tatoeba.sh's choices (8 of 12, 14 of 24).
"""

from __future__ import annotations

from typing import Mapping

import torch

POOLINGS = ("mean", "cls")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Sentence embeddings (B, H) in float32 from one layer's hidden states (B, T, H) and the attention
    mask (B, T) (1 on real tokens, specials included; 0 on padding)."""
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; use one of: {', '.join(POOLINGS)}")
    if hidden.ndim != 3 or attention_mask.shape != hidden.shape[:2]:
        raise ValueError(f"need hidden states (B, T, H) and a mask (B, T), got {tuple(hidden.shape)} and "
                         f"{tuple(attention_mask.shape)}")
    if pooling == "cls":
        return hidden[:, 0].float()
    mask = attention_mask.to(torch.float32).unsqueeze(-1)                    # (B, T, 1)
    summed = (hidden.float() * mask).sum(dim=1)                              # (B, H)
    return summed / mask.sum(dim=1).clamp_min(1.0)


def default_layer(num_layers: int, by_depth: Mapping[int, int]) -> int:
    """The hidden_states index (0 = embedding output) to embed with, for a model of `num_layers` layers:
    the task file's table (XTREME's choice per depth), else num_layers // 2 + 2, capped at the last layer."""
    if num_layers < 1:
        raise ValueError(f"a model has at least one layer, got {num_layers}")
    table = {int(depth): int(layer) for depth, layer in by_depth.items()}
    layer = table.get(num_layers, min(num_layers // 2 + 2, num_layers))
    if not 0 <= layer <= num_layers:
        raise ValueError(f"layer {layer} does not exist in a {num_layers}-layer model (hidden_states 0..{num_layers})")
    return layer
