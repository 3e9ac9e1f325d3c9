"""Load Hugging Face DeBERTa checkpoints into the native modules, and save them back for transformers.

```python
model, report = load_native("microsoft/mdeberta-v3-base", head="classification", num_labels=3)  # or "token", "qa"
print(report)   # one line: what was newly initialised, which checkpoint tensors were knowingly ignored
save_native(model, "out/")   # config.json + model.safetensors; transformers' from_pretrained loads it
```

Sources: a local directory, or a hub id fetched with `huggingface_hub.snapshot_download` (config.json, the
weights and the tokenizer files only; HF_HUB_OFFLINE=1 means the local cache only). Weights:
`model.safetensors` (or its shards) first, else `pytorch_model.bin` (or shards) with `torch.load(weights_only=True)`.

Key mapping is the identity (the native modules carry transformers' names), with or without the `deberta.`
prefix. Every encoder tensor must be in the checkpoint with the right shape; head tensors (pooler, classifier,
qa_outputs) the checkpoint lacks, as pretrained checkpoints do, are newly initialised like transformers
(normal(0, initializer_range), zero bias); so is a classifier trained for a different label count (reported
with both shapes). Checkpoint tensors the model does not use are allowed only when they match IGNORED below
(MLM/RTD heads, position_ids buffers, ...); anything else, and any other shape mismatch, is an XltError
naming the tensor and both shapes. Imports torch, safetensors and huggingface_hub only (no transformers).
"""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from xlt import hub
from xlt.atomic import atomic_path
from xlt.errors import XltError
from xlt.models import deberta as nd
from xlt.models.heads import BY_NATIVE_CLASS, get_head, head_width
from xlt.models.registry import read_config
from xlt.models.weight_headers import check_config_matches_weights

HEAD_PREFIXES = ("pooler.", "classifier.", "qa_outputs.")
# Checkpoint tensors we knowingly do not use: (glob on the key without "deberta.", why).
IGNORED = (
    ("lm_predictions.*", "MLM head"),
    ("cls.predictions.*", "MLM head"),
    ("mask_predictions.*", "RTD head"),
    ("*position_ids", "buffer"),
)
TOKENIZER_FILES = ["spm.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json", "vocab.json", "merges.txt", "bpe_encoder.bin"]


@dataclass(frozen=True)
class LoadReport:
    """What load_native did; str() is the one-line report."""

    source: str
    weights: str  # file name(s) read
    initialised: tuple[str, ...]  # model tensors newly initialised (head only)
    ignored: tuple[tuple[str, str], ...]  # (checkpoint key, reason) knowingly unused
    # classifier tensors re-initialised because the checkpoint's head has another label count:
    # (checkpoint key, checkpoint shape, model shape)
    reinitialised: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = ()

    def __str__(self) -> str:
        parts = [f"loaded {self.source} (native, {self.weights})"]
        parts.append(f"newly initialised: {', '.join(self.initialised)}" if self.initialised
                     else "nothing newly initialised")
        if self.reinitialised:
            parts.append("re-initialised for a different label count: " + ", ".join(
                f"{key} {old} -> {new}" for key, old, new in self.reinitialised))
        if self.ignored:
            groups: dict[str, int] = {}
            for key, why in self.ignored:
                label = f"{key.split('.', 1)[0]}.* ({why})" if why in ("MLM head", "RTD head") else f"{key} ({why})"
                groups[label] = groups.get(label, 0) + 1
            parts.append("unused checkpoint tensors: " + ", ".join(
                f"{label} x{n}" if n > 1 else label for label, n in groups.items()))
        else:
            parts.append("no unused checkpoint tensors")
        return "; ".join(parts)


# ----------------------------------------------------------------------------------------------------------
# Files


def resolve_dir(name_or_path: str | Path) -> Path:
    """A local checkpoint directory, downloading (or finding in the cache) a hub id's files if needed."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise XltError(f"'{name}' is not a checkpoint directory; pass a directory holding config.json and "
                       "model.safetensors (or pytorch_model.bin), or a hub id like microsoft/mdeberta-v3-base.")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    base = ["config.json", *TOKENIZER_FILES]
    try:
        local = Path(snapshot_download(name, allow_patterns=base + ["model*.safetensors",
                                                                    "model.safetensors.index.json"],
                                       local_files_only=offline))
        if not _weight_files(local)[0]:
            local = Path(snapshot_download(name, allow_patterns=base + ["pytorch_model*.bin",
                                                                        "pytorch_model.bin.index.json"],
                                           local_files_only=offline))
    except (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError) as exc:
        raise XltError(f"the hub has no accessible model '{name}' ({type(exc).__name__}); check the id (and your "
                       "access token for gated/private models) or pass a local checkpoint directory.") from None
    except LocalEntryNotFoundError:
        why = "HF_HUB_OFFLINE is set" if offline else "the hub is unreachable"
        raise XltError(f"cannot fetch '{name}': {why} and it is not in the local cache; download it where there "
                       f"is network ({hub.download_command(name)}) and pass that local directory instead.") from None
    except (OSError, ValueError) as exc:  # connection errors, invalid repo ids
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise XltError(f"cannot fetch '{name}' from the hub ({first}); "
                       "check the id and your network, or pass a local checkpoint directory.") from None
    return local


def _weight_files(d: Path) -> tuple[list[Path], str]:
    """Weight files in preference order: safetensors (single or sharded), else .bin (single or sharded)."""
    for single, index in (("model.safetensors", "model.safetensors.index.json"),
                          ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        if (d / single).is_file():
            return [d / single], single
        if (d / index).is_file():
            shards = sorted(set(json.loads((d / index).read_text())["weight_map"].values()))
            return [d / s for s in shards], f"{index} ({len(shards)} shards)"
    return [], ""


def read_state_dict(d: Path) -> tuple[dict[str, torch.Tensor], str]:
    files, label = _weight_files(d)
    if not files:
        present = ", ".join(sorted(p.name for p in d.iterdir())) or "nothing"
        raise XltError(f"{d} has no model.safetensors or pytorch_model.bin (found: {present}); point at a "
                       "complete checkpoint directory.")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            if f.suffix == ".safetensors":
                from safetensors.torch import load_file

                state.update(load_file(str(f)))
            else:
                state.update(torch.load(f, map_location="cpu", weights_only=True))
        except Exception as exc:  # corrupt, truncated or pickled with arbitrary objects
            raise XltError(f"cannot read weights {f} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                           "re-download or re-save the checkpoint (a .bin must load with weights_only=True).") from None
    return state, label


# ----------------------------------------------------------------------------------------------------------
# Load


def native_config(config: dict, num_labels: int | None = None) -> nd.DebertaConfig:
    """DebertaConfig from a config.json dict, with num_labels overriding the label count (names kept if
    the count agrees)."""
    cfg = dict(config)
    if num_labels is not None:
        names = cfg.get("id2label")
        if not names or len(names) != num_labels:
            cfg["id2label"] = {str(i): f"LABEL_{i}" for i in range(num_labels)}
    try:
        return nd.DebertaConfig.from_hf(cfg)
    except ValueError as exc:
        raise XltError(f"the native DeBERTa cannot build this checkpoint: {exc}; use --impl hf.") from None


def load_native(name_or_path: str | Path, head: str, num_labels: int | None = None,
                **head_options) -> tuple[nn.Module, LoadReport]:
    """Build the native model of `head` (xlt.models.heads) for a checkpoint's config.json and load its weights
    (fp32, eval mode off: the module is returned as constructed, i.e. in training mode like any fresh
    nn.Module). `head_options` go to the head's constructor (the encoder head's `output_layer`)."""
    spec = get_head(head)
    num_labels = head_width(spec, num_labels)
    d = resolve_dir(name_or_path)
    cfg = native_config(read_config(d), num_labels or None)
    check_config_matches_weights(_weight_files(d)[0], lambda: spec.native(cfg, **head_options), prefix="deberta",
                                 head_prefixes=("classifier.",), source=str(name_or_path))   # before allocating
    state, weights = read_state_dict(d)
    model = spec.native(cfg, **head_options)
    report = load_state(model, state, source=str(name_or_path), weights=weights)
    return model, report


def _strip(key: str) -> str:
    return key[len("deberta."):] if key.startswith("deberta.") else key


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str = "state dict",
               weights: str = "") -> LoadReport:
    """Copy a transformers-layout state dict into a native model; see the module docstring for the rules."""
    has_prefix = hasattr(model, "deberta")
    want = model.state_dict()
    # model key -> checkpoint key, matching "deberta.x" and "x" alike for encoder tensors
    ckpt_by_norm: dict[str, str] = {}
    for k in state:
        norm = _strip(k)
        ckpt_by_norm.setdefault(norm, k)
    loaded: dict[str, torch.Tensor] = {}
    initialised, missing, reinitialised = [], [], []
    used: set[str] = set()
    for mk, t in want.items():
        norm = _strip(mk) if has_prefix else mk
        ck = ckpt_by_norm.get(norm)
        is_head = not mk.startswith("deberta.") and has_prefix
        if ck is None:
            (initialised if is_head else missing).append(mk)
            continue
        if tuple(state[ck].shape) != tuple(t.shape):
            # A classifier fine-tuned for another label count (an MNLI checkpoint started on PAWS-X) gets a
            # fresh classifier, as transformers' ignore_mismatched_sizes does; anything else is an error.
            if is_head and mk.startswith("classifier."):
                reinitialised.append((ck, tuple(state[ck].shape), tuple(t.shape)))
                used.add(ck)
                continue
            raise XltError(f"shape mismatch for {ck}: checkpoint {tuple(state[ck].shape)}, model {tuple(t.shape)}"
                           "; the checkpoint does not match its own config.json, re-save it.")
        loaded[mk] = state[ck]
        used.add(ck)
    if missing:
        shown = ", ".join(missing[:6]) + (f" (+{len(missing) - 6} more)" if len(missing) > 6 else "")
        raise XltError(f"checkpoint {source} lacks encoder tensors {shown}; it does not match its config.json "
                       "(or is not a DeBERTa checkpoint of this version). Re-save it or use --impl hf.")
    ignored, unknown = [], []
    no_abs_pos = not getattr(model, "cfg").position_biased_input
    for k in state:
        if k in used:
            continue
        norm = _strip(k)
        why = next((w for pat, w in IGNORED if fnmatch.fnmatchcase(norm, pat)), None)
        if why is None and no_abs_pos and norm == "embeddings.position_embeddings.weight":
            why = "position_biased_input is false"  # transformers ignores it too
        if why is None and norm.startswith(HEAD_PREFIXES):
            why = f"not part of head '{type(model).__name__}'"
        (ignored.append((k, why)) if why else unknown.append(k))
    if unknown:
        raise XltError(f"checkpoint {source} has tensors the native model does not know: {', '.join(unknown[:6])}"
                       f"{' ...' if len(unknown) > 6 else ''}; it may be a newer DeBERTa variant, use --impl hf.")
    with torch.no_grad():
        params = dict(model.named_parameters())
        params.update(dict(model.named_buffers()))
        for mk, t in loaded.items():
            params[mk].copy_(t)
    return LoadReport(source=source, weights=weights, initialised=tuple(initialised), ignored=tuple(ignored),
                      reinitialised=tuple(reinitialised))


# ----------------------------------------------------------------------------------------------------------
# Save


def save_native(model: nn.Module, out_dir: str | Path, id2label=None) -> Path:
    """Write config.json + model.safetensors that transformers' from_pretrained loads with nothing missing;
    `id2label` (names in the head's order) replaces the config's label names."""
    from safetensors.torch import save_file

    head = BY_NATIVE_CLASS.get(type(model))
    if head is None:
        raise XltError(f"save_native saves native DeBERTa models, not {type(model).__name__}.")
    kind = head.architecture
    cfg: nd.DebertaConfig = model.cfg
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hf = cfg.to_hf()
    hf["architectures"] = [("Deberta" if cfg.version == 1 else "DebertaV2") + kind]
    if id2label is not None:
        if len(id2label) != cfg.num_labels:
            raise XltError(f"{len(id2label)} label names for a head of {cfg.num_labels} outputs")
        hf["id2label"] = {str(i): str(name) for i, name in enumerate(id2label)}
        hf["label2id"] = {str(name): i for i, name in enumerate(id2label)}
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(hf, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out
