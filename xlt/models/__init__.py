"""Models: resolve a name to a checkpoint and load it with the head a task type needs.

```python
from xlt.models import load_model, resolve_model
m = load_model("mdeberta-v3-base", head="classification", num_labels=3)   # native DeBERTa; impl="hf": transformers
logits = m.model(input_ids, attention_mask)     # (B, C); the head table: xlt/models/heads.py
print(m.load_report)                            # newly initialised / unused tensors, one line
m.save("out/")                                  # transformers-loadable + tokenizer
```
DeBERTa v1/v2/v3 go through the native implementation (`xlt.models.deberta`, loaded by
`xlt.models.checkpoint`) when `impl` is "auto" or "native"; everything else, and `impl="hf"`, through
transformers' Auto classes (`xlt.models.hf`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from torch import nn

from xlt.errors import XltError
from xlt.models.heads import HEADS, get_head
from xlt.models.registry import REGISTRY, ModelInfo, resolve_model
from xlt.spec import IMPLS

# Files a tokenizer needs: at least one of these beside config.json (a checkpoint without them would be
# tokenised into [UNK] and train on nothing).
TOKENIZER_FILES = ("tokenizer.json", "spm.model", "sentencepiece.bpe.model", "vocab.txt", "vocab.json",
                   "tokenizer.model")


@dataclass
class LoadedModel:
    """A model with a task head, ready to train: model, tokenizer and what was loaded."""

    model: nn.Module  # model(input_ids, attention_mask, token_type_ids=None) -> logits of its head
    tokenizer: object  # a transformers tokenizer (fast where one exists)
    info: ModelInfo
    embedding_layernorm: nn.Module  # embeddings.LayerNorm, whose output SiFT perturbs
    impl: str  # "native" | "hf": what actually runs
    head: str  # xlt.models.heads
    load_report: str = field(default="")  # one line: newly initialised / unused checkpoint tensors
    new_tensors: tuple[str, ...] = ()  # model tensors not taken from the checkpoint (random: a fresh head)

    def save(self, out_dir: str | Path, label_names: Sequence[str] | None = None) -> Path:
        """Write a checkpoint transformers' `from_pretrained` loads (config, weights) plus the tokenizer;
        `label_names` become its config's id2label (the task's labels, in the head's order)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if self.impl == "native":
            from xlt.models.checkpoint import save_native

            save_native(self.model, out, id2label=label_names)
        else:
            self.model.save(out, id2label=label_names)
        self.tokenizer.save_pretrained(out)
        return out



def choose_impl(info: ModelInfo, impl: str = "auto") -> str:
    if impl not in IMPLS:
        raise XltError(f"unknown implementation '{impl}'; choose one of {', '.join(IMPLS)}.")
    is_deberta = info.family.startswith("deberta")
    if impl == "native" and not is_deberta:
        raise XltError(f"'{info.name}' is {info.family}, which has no native implementation; use --impl hf (or auto).")
    return "native" if impl in ("native", "auto") and is_deberta else "hf"


def check_tokenizer_files(info: ModelInfo) -> None:
    """A local checkpoint must ship its tokenizer: without one every word would become [UNK]."""
    folder = Path(info.hub_id)
    if folder.is_dir() and not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise XltError(f"checkpoint {folder} has no tokenizer files (expected one of {', '.join(TOKENIZER_FILES)} "
                       "beside config.json); copy them from the model it was trained from, or save the tokenizer "
                       "with tokenizer.save_pretrained(DIR)")


def check_reachable(info: ModelInfo) -> None:
    """A hub model with no network must already be in the hub cache: else fail now, with the download command,
    instead of after the hub client's retries."""
    from xlt import hub

    if info.is_local or not hub.is_offline() or hub.is_cached(info.hub_id):
        return
    raise XltError(f"cannot fetch '{info.hub_id}': {hub.offline_reason()} and it is not in the local hub cache. "
                   f"Download it where there is network ({hub.download_command(info.hub_id)}) and pass that "
                   "folder: --model DIR")


def load_tokenizer(source: str):
    """AutoTokenizer for a hub id or local directory (fast where one exists)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, trust_remote_code=False)   # never checkpoint code
    except (OSError, ValueError) as exc:
        raise XltError(f"could not load the tokenizer of '{source}' ({str(exc).splitlines()[0]}); the checkpoint "
                       f"needs its tokenizer files (one of {', '.join(TOKENIZER_FILES)}) beside config.json.") from None


def load_model(name_or_path: str, head: str, num_labels: int | None = 2, impl: str = "auto",
               gradient_checkpointing: bool = False, **head_options) -> LoadedModel:
    """Load a registry name, hub id or local checkpoint directory with a `num_labels`-wide `head` (fp32; the
    heads and their options: xlt.models.heads)."""
    get_head(head)
    info = resolve_model(name_or_path)
    check_tokenizer_files(info)
    check_reachable(info)
    chosen = choose_impl(info, impl)
    source = info.hub_id
    if chosen == "native":
        from xlt.models.checkpoint import load_native

        model, report = load_native(source, head=head, num_labels=num_labels, **head_options)
        if gradient_checkpointing:
            model.gradient_checkpointing_enable(True)
        norm = model.deberta.embeddings.LayerNorm
        report_line = str(report)
        new = (*report.initialised, *(key for key, _, _ in report.reinitialised))
    else:
        from xlt.models.hf import load_hf

        model, report_line = load_hf(source, head, num_labels, gradient_checkpointing, **head_options)
        norm = model.embedding_layernorm()
        new = model.new_tensors
    tokenizer = load_tokenizer(source)
    _check_vocab(tokenizer, info, source)
    return LoadedModel(model=model, tokenizer=tokenizer, info=info, embedding_layernorm=norm, impl=chosen,
                       load_report=report_line, head=head, new_tensors=tuple(new))


def _check_vocab(tokenizer, info: ModelInfo, source: str) -> None:
    vocab = info.config.get("vocab_size")
    if vocab and len(tokenizer) > vocab:
        raise XltError(f"the tokenizer of '{source}' has {len(tokenizer)} ids but the model's vocab_size is "
                       f"{vocab}; ids past the embedding table would crash. Use the checkpoint's own tokenizer.")


__all__ = ["LoadedModel", "ModelInfo", "REGISTRY", "HEADS", "load_model",
           "resolve_model", "choose_impl", "load_tokenizer", "check_tokenizer_files", "check_reachable", "IMPLS"]
