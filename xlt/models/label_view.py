"""A checkpoint's head seen in a task's label order: output column i is the task's label i.

    view = LabelView(model, columns=(1, 2, 0))      # from xlt.labelmatch.match_labels(...).columns
    view(input_ids, attention_mask)                  # (..., task labels): logits[..., [1, 2, 0]]

`xlt eval` evaluates a checkpoint fine-tuned elsewhere, whose label order is its own. Its logits are reordered
(and restricted to the task's labels) before the task type decodes them, rather than its predicted ids mapped
after the argmax: a checkpoint with extra labels (B-MISC on PAN-X) must predict among the task's labels only,
which needs the logits; and the task type's decoding, predictions and statistics then run unchanged, so the
record's predictions are in the task's label ids like every other record's. A task label no checkpoint label
maps to (`columns` entry None, only with --label-map) gets the lowest logit there is: never predicted.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class LabelView(nn.Module):
    def __init__(self, model: nn.Module, columns: Sequence[int | None], width: int):
        super().__init__()
        self.model = model
        self.fills = any(c is None for c in columns)
        index = [width if c is None else int(c) for c in columns]   # `width`: the never-chosen column
        self.register_buffer("index", torch.tensor(index, dtype=torch.long), persistent=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.model(input_ids, attention_mask, token_type_ids)          # (..., checkpoint labels)
        if self.fills:
            lowest = logits.new_full((*logits.shape[:-1], 1), torch.finfo(logits.dtype).min)
            logits = torch.cat([logits, lowest], dim=-1)
        return logits.index_select(-1, self.index.to(logits.device))            # (..., task labels)


__all__ = ["LabelView"]
