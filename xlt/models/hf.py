"""Models through transformers' Auto classes: XLM-R, mBERT and anything else, and `--impl hf` for DeBERTa.

`HFModel` wraps a transformers model with one of xlt's heads (xlt.models.heads: the Auto class and how its
output becomes one tensor) so that `model(input_ids, attention_mask, token_type_ids=None)` returns what the
native DeBERTa heads return: logits (B, C), (B, T, C), start/end logits (B, T, 2), or the encoder's hidden
states. The wrapped model is `.hf` (so its state-dict keys carry an `hf.` prefix; `.hf.state_dict()` has
transformers' own names and loads into the native model directly).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from xlt.errors import XltError
from xlt.models.heads import get_head, head_width

HEAD_PREFIXES = ("classifier.", "pooler.", "score.", "qa_outputs.")  # tensors a fresh head may lack


class HFModel(nn.Module):
    """A transformers model with one of xlt's heads whose forward returns one logits tensor."""

    def __init__(self, hf_model: nn.Module, head: str, output_layer: int | None = -1):
        super().__init__()
        self.hf = hf_model
        self.head = get_head(head)
        self.output_layer = output_layer   # the encoder head's layer (xlt.models.heads)
        self.new_tensors: tuple[str, ...] = ()   # set by load_hf: tensors not from the checkpoint (random)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        out = self.hf(input_ids=input_ids, attention_mask=attention_mask, return_dict=True,
                      **dict(self.head.hf_kwargs), **kwargs)
        return self.head.output(out, self)

    @property
    def config(self):
        return self.hf.config

    def embedding_layernorm(self) -> nn.Module:
        """embeddings.LayerNorm of the encoder (DeBERTa, XLM-R, BERT all name it so)."""
        base = self.hf.base_model
        emb = getattr(base, "embeddings", None)
        norm = getattr(emb, "LayerNorm", None) if emb is not None else None
        if norm is None:
            raise XltError(f"{type(self.hf).__name__} has no embeddings.LayerNorm; SiFT needs one, so this "
                           "architecture cannot be used with SiFT (turn it off in the spec).")
        return norm

    def save(self, out_dir: str | Path, id2label=None) -> None:
        if id2label is not None:   # the task's label names in the head's order
            self.hf.config.id2label = dict(enumerate(id2label))
            self.hf.config.label2id = {name: i for i, name in enumerate(id2label)}
        self.hf.save_pretrained(out_dir)



def hf_config(config: dict, num_labels: int | None = None):
    """A transformers config object from a config.json dict (the registry's size configs included)."""
    from transformers import AutoConfig

    cfg = dict(config)
    model_type = cfg.pop("model_type")
    for key in ("architectures", "transformers_version", "_name_or_path", "torch_dtype", "dtype"):
        cfg.pop(key, None)
    if num_labels is not None:
        cfg.pop("id2label", None), cfg.pop("label2id", None)
        cfg["num_labels"] = num_labels
    try:
        return AutoConfig.for_model(model_type, **cfg)
    except ValueError as exc:   # its message lists every model type transformers knows: keep the first sentence
        raise XltError(f"transformers does not know model_type '{model_type}' ({str(exc).split('. ')[0]}); "
                       "upgrade transformers or use a supported architecture.") from None


def build_from_config(config: dict, num_labels: int | None, head: str) -> HFModel:
    """Random weights at a given size config (benchmarks, verify)."""
    spec = get_head(head)
    model = spec.auto_class().from_config(hf_config(config, head_width(spec, num_labels) or None))
    return HFModel(model.float(), head)


def _summarise(keys: list[str], limit: int = 6) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def load_report_line(source: str, impl: str, missing: list[str], unused: list[str],
                     mismatched: list[str] = ()) -> str:
    """One line saying which tensors were newly initialised and which checkpoint tensors went unused."""
    parts = [f"loaded {source} ({impl})"]
    parts.append(f"newly initialised: {_summarise(missing)}" if missing else "nothing newly initialised")
    if mismatched:
        parts.append(f"re-initialised for a different label count: {_summarise(mismatched)}")
    parts.append(f"unused checkpoint tensors: {_summarise(unused)}" if unused else "no unused tensors")
    return "; ".join(parts)


def load_hf(source: str, head: str, num_labels: int | None, gradient_checkpointing: bool = False,
            **head_options) -> tuple[HFModel, str]:
    """Load a hub id or local directory with the Auto class of `head` (xlt.models.heads), in fp32.

    A head with a different number of labels than `num_labels` is re-initialised (and said so); any
    other shape mismatch is an error naming the tensor. `head_options`: the encoder head's `output_layer`.
    """
    spec = get_head(head)
    width = head_width(spec, num_labels)
    sized = {"num_labels": width} if width else {}
    from transformers.utils import logging as hf_logging

    if Path(source).is_dir():   # config.json against the weights' headers, before anything is allocated
        from xlt.models.checkpoint import _weight_files
        from xlt.models.registry import read_config
        from xlt.models.weight_headers import check_config_matches_weights

        config = read_config(Path(source))
        check_config_matches_weights(_weight_files(Path(source))[0],
                                     lambda: spec.auto_class().from_config(hf_config(config, width or None)),
                                     head_prefixes=HEAD_PREFIXES, source=source)
    previous, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # we print our own one-line report instead of transformers' warnings
    hf_logging.disable_progress_bar()
    try:
        model, info = spec.auto_class().from_pretrained(
            source, dtype=torch.float32, output_loading_info=True, ignore_mismatched_sizes=True,
            trust_remote_code=False, **sized)   # never run code from a checkpoint
    except OSError as exc:
        raise XltError(f"could not load weights for '{source}' ({str(exc).splitlines()[0]}); check the hub id "
                       "and your network, or pass a local checkpoint directory.") from None
    except ValueError as exc:   # e.g. an architecture transformers does not ship (its code is never run)
        raise XltError(f"transformers cannot build '{source}' ({str(exc).splitlines()[0]}); use a checkpoint of "
                       "an architecture transformers ships, or re-save it.") from None
    finally:
        hf_logging.set_verbosity(previous)
        if bars:
            hf_logging.enable_progress_bar()
    mismatched = [m[0] if isinstance(m, (tuple, list)) else str(m) for m in info.get("mismatched_keys", [])]
    body = [m for m in mismatched if not _is_head(m)]
    if body:
        raise XltError(f"checkpoint '{source}' does not match its own config: {_summarise(body)} have the wrong "
                       "shape; re-save the checkpoint or fix its config.json.")
    if gradient_checkpointing:  # renamed in transformers 5 (the old name warns and goes in v6)
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable()
    report = load_report_line(source, "hf", list(info.get("missing_keys", [])),
                              list(info.get("unexpected_keys", [])), mismatched)
    wrapped = HFModel(model, head, **head_options)
    wrapped.new_tensors = tuple(sorted({*info.get("missing_keys", []), *mismatched}))
    return wrapped, report


def _is_head(key: str) -> bool:
    key = key.split(".", 1)[1] if key.split(".", 1)[0] in ("deberta", "roberta", "bert") else key
    return key.startswith(HEAD_PREFIXES)



__all__ = ["HFModel", "hf_config", "build_from_config", "load_hf", "load_report_line"]
