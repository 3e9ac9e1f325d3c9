"""The native DeBERTa against transformers on identical weights: `xlt models verify` and the benchmark pairs.

`verify(model)` loads a checkpoint twice (native loader, transformers' `from_pretrained`), gives both the
same random batch with padding (mixed lengths), and returns the max absolute difference of the encoder output
on non-padded positions and of the classification logits. A head the checkpoint does not carry (pretrained
layout) is initialised by the native loader and copied into the transformers model, so both heads are equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from xlt.errors import XltError
from xlt.models import deberta
from xlt.models.registry import ModelInfo, resolve_model

TOLERANCE = 1e-4  # fp32


@dataclass
class VerifyResult:
    info: ModelInfo
    seq_len: int
    batch_size: int
    lengths: list[int]
    encoder_max_abs_diff: float
    logits_max_abs_diff: float
    native_report: str
    copied_head: list[str]  # head tensors copied native -> transformers (checkpoint had none)
    tolerance: float = TOLERANCE

    @property
    def ok(self) -> bool:
        return self.encoder_max_abs_diff <= self.tolerance and self.logits_max_abs_diff <= self.tolerance


def _require_deberta(info: ModelInfo) -> None:
    if not info.family.startswith("deberta"):
        raise XltError(f"'{info.name}' is {info.family}; only DeBERTa models have a native implementation to "
                       "verify. Pick a DeBERTa checkpoint.")


def native_from_config(config: dict, num_labels: int) -> nn.Module:
    """A native DebertaForSequenceClassification with random weights at a config.json's size."""
    plain = {k: v for k, v in config.items() if k not in ("id2label", "label2id")}
    try:
        cfg = deberta.DebertaConfig.from_hf(dict(plain, num_labels=num_labels))
    except ValueError as exc:
        raise XltError(f"the native DeBERTa cannot build this config: {exc}; use --impl hf.") from None
    return deberta.DebertaForSequenceClassification(cfg)


def native_like(hf_model: nn.Module, config: dict, num_labels: int) -> nn.Module:
    """A native model carrying exactly the weights of a transformers *ForSequenceClassification model."""
    native = native_from_config(config, num_labels)
    state = hf_model.state_dict()
    result = native.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("position_ids")]
    unexpected = [k for k in result.unexpected_keys if not k.endswith("position_ids")]
    if missing or unexpected:
        raise XltError(f"native and transformers parameter names differ: missing in transformers' state dict "
                       f"{missing[:5]}, not in the native model {unexpected[:5]}; this is a bug in "
                       "xlt.models.deberta (names must equal transformers').")
    return native


def random_batch(config: dict, batch_size: int, seq_len: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random ids with mixed lengths (full length down to about a third, padded at the end) and a mask.

    token_type_ids (two segments) only when the config has a token-type table.
    """
    gen = torch.Generator().manual_seed(seed)
    vocab = config["vocab_size"]
    pad = config.get("pad_token_id", 0) or 0
    lo = min(5, vocab - 1)
    ids = torch.randint(lo, vocab, (batch_size, seq_len), generator=gen)
    shortest = max(2, seq_len // 3)
    lengths = torch.linspace(seq_len, shortest, batch_size).round().long() if batch_size > 1 else torch.tensor(
        [seq_len])
    mask = (torch.arange(seq_len)[None, :] < lengths[:, None]).long()
    ids = ids.masked_fill(mask == 0, pad)
    batch = {"input_ids": ids, "attention_mask": mask}
    if config.get("type_vocab_size", 0) > 0:
        tt = (torch.arange(seq_len)[None, :] >= (lengths[:, None] // 2)).long() * mask
        batch["token_type_ids"] = tt
    return batch


def _native_encoder_output(native: nn.Module, batch: dict) -> torch.Tensor:
    out = native.deberta(batch["input_ids"], attention_mask=batch["attention_mask"],
                         token_type_ids=batch.get("token_type_ids"))
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out


def _hf_encoder_output(hf_model: nn.Module, batch: dict) -> torch.Tensor:
    return hf_model.base_model(**batch, return_dict=True).last_hidden_state


def compare(native: nn.Module, hf_model: nn.Module, batch: dict) -> tuple[float, float]:
    """(encoder max abs diff on non-padded positions, logits max abs diff), both models in eval mode."""
    native.eval(), hf_model.eval()
    keep = batch["attention_mask"].bool()
    with torch.no_grad():
        enc_n = _native_encoder_output(native, batch)
        enc_h = _hf_encoder_output(hf_model, batch)
        logits_n = native(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        logits_h = hf_model(**batch, return_dict=True).logits
    if enc_n.shape != enc_h.shape or logits_n.shape != logits_h.shape:
        raise XltError(f"native and transformers outputs differ in shape: encoder {tuple(enc_n.shape)} vs "
                       f"{tuple(enc_h.shape)}, logits {tuple(logits_n.shape)} vs {tuple(logits_h.shape)}.")
    enc = (enc_n - enc_h).abs()[keep].max().item()
    logits = (logits_n - logits_h).abs().max().item()
    return enc, logits


def _load_native(source: str, num_labels: int):
    from xlt.models.checkpoint import load_native

    return load_native(source, head="classification", num_labels=num_labels)


def _load_transformers(source: str, num_labels: int):
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    previous, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=num_labels, dtype=torch.float32, output_loading_info=True,
            ignore_mismatched_sizes=True, trust_remote_code=False)
    finally:
        hf_logging.set_verbosity(previous)
        if bars:
            hf_logging.enable_progress_bar()


def verify(name_or_path: str, seq_len: int = 128, batch_size: int = 4, num_labels: int = 3,
           seed: int = 0) -> VerifyResult:
    """Load `name_or_path` natively and with transformers; compare on one padded random batch (fp32)."""
    if seq_len < 2 or batch_size < 1:
        raise XltError("--seq-len must be >= 2 and --batch-size >= 1.")
    info = resolve_model(name_or_path)
    _require_deberta(info)
    max_len = info.config.get("max_position_embeddings", 512)
    if info.config.get("position_biased_input", True) and seq_len > max_len:
        raise XltError(f"--seq-len {seq_len} exceeds this model's {max_len} absolute positions; use <= {max_len}.")
    torch.manual_seed(seed)
    native, report = _load_native(info.hub_id, num_labels)
    hf_model, loading = _load_transformers(info.hub_id, num_labels)
    # Tensors transformers had to initialise (no classifier in a pretrained checkpoint, or a different label
    # count): take the native loader's, so the two heads start identical.
    fresh = set(loading.get("missing_keys", [])) | {
        m[0] if isinstance(m, (tuple, list)) else str(m) for m in loading.get("mismatched_keys", [])}
    native_state = native.state_dict()
    copied = sorted(k for k in fresh if k in native_state)
    if copied:
        with torch.no_grad():
            hf_state = hf_model.state_dict()
            for key in copied:
                hf_state[key].copy_(native_state[key])
    batch = random_batch(info.config, batch_size, seq_len, seed)
    enc, logits = compare(native, hf_model, batch)
    return VerifyResult(info=info, seq_len=seq_len, batch_size=batch_size,
                        lengths=batch["attention_mask"].sum(1).tolist(), encoder_max_abs_diff=enc,
                        logits_max_abs_diff=logits, native_report=str(report), copied_head=copied)


__all__ = ["VerifyResult", "verify", "compare", "random_batch", "native_from_config", "native_like", "TOLERANCE"]
