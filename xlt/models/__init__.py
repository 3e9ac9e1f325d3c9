"""Models: resolve a name to a checkpoint and load it as a classifier.

```python
from xlt.models import load_classifier, resolve_model
clf = load_classifier("mdeberta-v3-base", num_labels=3)     # native DeBERTa; impl="hf" for transformers'
logits = clf.model(input_ids, attention_mask)               # (B, C)
print(clf.load_report)                                      # newly initialised / unused tensors, one line
clf.save("out/")                                            # transformers-loadable + tokenizer
```
DeBERTa v1/v2/v3 go through the native implementation (`xlt.models.deberta`, loaded by
`xlt.models.checkpoint`) when `impl` is "auto" or "native"; everything else, and `impl="hf"`, through
transformers' Auto classes (`xlt.models.hf`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from xlt.errors import XltError
from xlt.models.registry import REGISTRY, ModelInfo, resolve_model

IMPLS = ("auto", "native", "hf")


@dataclass
class Classifier:
    """A sequence classifier.eady to train: model, tokenizer and what was loaded."""

    model: nn.Module  # model(input_ids, attention_mask, token_type_ids=None) -> logits (B, C)
    tokenizer: object  # a transformers tokenizer (fast where one exists)
    info: ModelInfo
    embedding_layernorm: nn.Module  # embeddings.LayerNorm, whose output SiFT perturbs
    impl: str  # "native" | "hf": what actually runs
    load_report: str = field(default="")  # one line: newly initialised / unused checkpoint tensors

    def save(self, out_dir: str | Path) -> Path:
        """Write a checkpoint transformers' `from_pretrained` loads (config, weights) plus the tokenizer."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if self.impl == "native":
            from xlt.models.checkpoint import save_native

            save_native(self.model, out)
        else:
            self.model.save(out)
        self.tokenizer.save_pretrained(out)
        return out


def native_available() -> bool:
    """True once the native DeBERTa modules and their checkpoint loader are importable."""
    try:
        from xlt.models import checkpoint, deberta
    except Exception:  # absent, or (in a shared work tree) half-written: fall back to transformers
        return False
    return all(hasattr(checkpoint, f) for f in ("load_native", "save_native")) and hasattr(
        deberta, "DebertaForSequenceClassification")


def choose_impl(info: ModelInfo, impl: str = "auto") -> str:
    if impl not in IMPLS:
        raise XltError(f"unknown implementation '{impl}'; choose one of {', '.join(IMPLS)}.")
    is_deberta = info.family.startswith("deberta")
    if impl == "native":
        if not is_deberta:
            raise XltError(f"'{info.name}' is {info.family}, which has no native implementation; "
                           "use --impl hf (or auto).")
        if not native_available():
            raise XltError("the native DeBERTa implementation is not available in this install "
                           "(xlt.models.deberta / xlt.models.checkpoint missing); use --impl hf.")
        return "native"
    if impl == "auto":
        return "native" if is_deberta and native_available() else "hf"
    return "hf"


def load_tokenizer(source: str):
    """AutoTokenizer for a hub id or local directory (fast where one exists)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise XltError(f"could not load the tokenizer of '{source}' ({str(exc).splitlines()[0]}); the checkpoint "
                       "needs its tokenizer files (spm.model / sentencepiece.bpe.model / tokenizer.json) beside "
                       "config.json.") from None


def load_classifier(name_or_path: str, num_labels: int, impl: str = "auto",
                    gradient_checkpointing: bool = False) -> Classifier:
    """Load a registry name, hub id or local checkpoint directory as a `num_labels`-way classifier.fp32)."""
    info = resolve_model(name_or_path)
    chosen = choose_impl(info, impl)
    source = info.hub_id
    if chosen == "native":
        from xlt.models.checkpoint import load_native

        model, report = load_native(source, head="classification", num_labels=num_labels)
        if gradient_checkpointing:
            _enable_native_checkpointing(model)
        norm = model.deberta.embeddings.LayerNorm
        report_line = str(report)
    else:
        from xlt.models.hf import load_hf_classifier

        model, report_line = load_hf_classifier(source, num_labels, gradient_checkpointing)
        norm = model.embedding_layernorm()
    tokenizer = load_tokenizer(source)
    _check_vocab(tokenizer, info, source)
    return Classifier(model=model, tokenizer=tokenizer, info=info, embedding_layernorm=norm, impl=chosen,
                      load_report=report_line)


def _enable_native_checkpointing(model: nn.Module) -> None:
    for target in (model, getattr(model, "deberta", None)):
        for attr in ("gradient_checkpointing_enable", "set_gradient_checkpointing"):
            fn = getattr(target, attr, None)
            if callable(fn):
                fn() if attr.endswith("enable") else fn(True)
                return
    encoder = getattr(getattr(model, "deberta", None), "encoder", None)
    if encoder is not None and hasattr(encoder, "gradient_checkpointing"):
        encoder.gradient_checkpointing = True
        return
    raise XltError("this native DeBERTa build has no gradient-checkpointing switch; run without "
                   "gradient_checkpointing or with impl='hf'.")


def _check_vocab(tokenizer, info: ModelInfo, source: str) -> None:
    vocab = info.config.get("vocab_size")
    if vocab and len(tokenizer) > vocab:
        raise XltError(f"the tokenizer of '{source}' has {len(tokenizer)} ids but the model's vocab_size is "
                       f"{vocab}; ids past the embedding table would crash. Use the checkpoint's own tokenizer.")


__all__ = ["Classifier", "ModelInfo", "REGISTRY", "load_classifier", "resolve_model", "choose_impl",
           "load_tokenizer", "native_available", "IMPLS"]
