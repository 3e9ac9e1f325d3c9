"""The one head table: what each of xlt's heads is on the native DeBERTa and through transformers.

    head = get_head("token")
    head.native           -> DebertaForTokenClassification          (xlt.models.checkpoint builds it)
    head.auto_class()     -> transformers.AutoModelForTokenClassification   (xlt.models.hf loads it)
    head.output(out, m)   -> the one tensor every xlt model returns: (B, T, C)

| head | output | native class | transformers Auto class |
|---|---|---|---|
| classification | logits (B, C) | DebertaForSequenceClassification | AutoModelForSequenceClassification |
| token | logits (B, T, C) | DebertaForTokenClassification | AutoModelForTokenClassification |
| qa | start/end logits (B, T, 2) | DebertaForQuestionAnswering | AutoModelForQuestionAnswering |
| encoder | hidden states (B, T, H) of one layer, or (L + 1, B, T, H) of all | DebertaHiddenStates | AutoModel |

A task type names its head (`TaskType.head`); checkpoint loading, the transformers path and `xlt models verify`
look it up here, and nowhere else spells these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from xlt.errors import XltError
from xlt.models import deberta as nd


def _logits(out: Any, model: Any) -> torch.Tensor:
    return out.logits


def _spans(out: Any, model: Any) -> torch.Tensor:
    return torch.stack([out.start_logits, out.end_logits], dim=-1)   # (B, T, 2)


def _hidden(out: Any, model: Any) -> torch.Tensor:
    layer = getattr(model, "output_layer", -1)
    if layer is None:
        return torch.stack(out.hidden_states)                          # (L + 1, B, T, H), embeddings first
    return out.hidden_states[layer]                                     # (B, T, H)


@dataclass(frozen=True)
class Head:
    name: str
    native: type                                 # the native DeBERTa module
    auto: str                                    # transformers' Auto class
    architecture: str                            # suffix of config.json's "architectures" (DebertaV2<suffix>)
    output: Callable[[Any, Any], torch.Tensor]   # transformers' output -> the tensor xlt's models return
    outputs: int | None = None                   # a fixed width (QA: start and end; encoder: none); None: labels
    hf_kwargs: tuple[tuple[str, Any], ...] = ()  # extra arguments of the transformers forward

    def auto_class(self):
        import transformers

        return getattr(transformers, self.auto)


HEADS: dict[str, Head] = {h.name: h for h in (
    Head("classification", nd.DebertaForSequenceClassification, "AutoModelForSequenceClassification",
         "ForSequenceClassification", _logits),
    Head("token", nd.DebertaForTokenClassification, "AutoModelForTokenClassification", "ForTokenClassification",
         _logits),
    Head("qa", nd.DebertaForQuestionAnswering, "AutoModelForQuestionAnswering", "ForQuestionAnswering", _spans,
         outputs=2),
    Head("encoder", nd.DebertaHiddenStates, "AutoModel", "Model", _hidden, outputs=0,
         hf_kwargs=(("output_hidden_states", True),)),
)}
BY_NATIVE_CLASS = {h.native: h for h in HEADS.values()}


def get_head(name: str) -> Head:
    if name not in HEADS:
        raise XltError(f"unknown head {name!r}; choose one of {', '.join(HEADS)}")
    return HEADS[name]


def head_width(head: Head, num_labels: int | None) -> int | None:
    """The output width a head gets: its own fixed width, else the label count."""
    if head.outputs is None:
        return num_labels
    if num_labels is not None and num_labels != head.outputs:
        raise XltError(f"head {head.name!r} has {head.outputs or 'no'} outputs of its own, not num_labels="
                       f"{num_labels}; leave num_labels unset for it")
    return head.outputs


__all__ = ["Head", "HEADS", "BY_NATIVE_CLASS", "get_head", "head_width"]
