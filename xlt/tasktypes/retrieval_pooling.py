"""Sentence embeddings from one layer's hidden states, as XTREME's retrieval scripts make them.

XTREME (google-research/xtreme `third_party/run_retrieval.py`, `evaluate_retrieval.py`) embeds a sentence as
one layer's hidden states pooled over the sentence:

- `mean` (`mean_pool_embedding`): the average over every non-padding position, [CLS] and [SEP] included
  (the pool mask is the attention mask unless `--pool_skip_special_token`, which no script passes);
- `cls` (`cls_pool_embedding`): the first position.

The layer is `all_layer_outputs[-num_layers:][specific_layer]`: the embedding output is dropped, so
`--specific_layer 7` of a 12-layer model is the output of the 8th transformer layer, `hidden_states[8]` in
transformers' counting (0 = embeddings). Which layer a run uses is the `layer` hyperparameter; its default
follows XTREME's scripts (`xlt.recipes.xtreme_retrieval_layer`), and the encoder head returns that layer.
"""

from __future__ import annotations

import torch

from xlt.spec import CHOICES

POOLINGS = CHOICES["pooling"]


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
