"""A checkpoint's config.json checked against its weight files' headers before anything is allocated.

A model is built from config.json, so a config that claims a 10^8-piece vocabulary made xlt allocate (and
initialise) a 19 GB embedding before the weights were read and found to disagree. Here the shapes come from
the weight files without reading their data (safetensors: the JSON header through `safe_open`; a .bin: loaded
onto the meta device, weights_only), the model's shapes from building it on the meta device (no memory), and a
body tensor whose shapes differ is one XltError naming the tensor, both shapes and the file. Head tensors may
differ (a classifier fine-tuned for another label count is re-initialised, as the loaders say).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from xlt.errors import XltError


def header_shapes(files: Iterable[Path]) -> dict[str, tuple[tuple[int, ...], str]]:
    """{tensor name: (shape, file name)} of weight files, read from their headers only."""
    from safetensors import safe_open

    shapes: dict[str, tuple[tuple[int, ...], str]] = {}
    for f in files:
        try:
            if f.suffix == ".safetensors":
                with safe_open(str(f), framework="pt") as handle:
                    for key in handle.keys():
                        shapes[key] = (tuple(handle.get_slice(key).get_shape()), f.name)
            else:
                state = torch.load(f, map_location="meta", weights_only=True)
                shapes.update({k: (tuple(v.shape), f.name) for k, v in state.items() if torch.is_tensor(v)})
        except Exception as exc:  # noqa: BLE001 - corrupt or truncated: one message naming the file
            raise XltError(f"cannot read the tensor shapes of {f} ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); re-download or re-save the "
                           "checkpoint (a .bin must load with weights_only=True)") from None
    return shapes


def meta_model(build: Callable[[], nn.Module]) -> nn.Module:
    """The model `build` makes, built on the meta device: its shapes, nothing allocated."""
    with torch.device("meta"):
        return build()


def check_config_matches_weights(files: Iterable[Path], build: Callable[[], nn.Module], *,
                                 head_prefixes: tuple[str, ...], source: str, prefix: str | None = None) -> None:
    """Refuse a checkpoint whose config.json builds body tensors of other shapes than its weight files hold.
    Keys are compared without the base model's `prefix` ("deberta", "roberta"; default: the built model's
    `base_model_prefix`), which checkpoints may omit."""
    model = meta_model(build)
    prefix = prefix if prefix is not None else str(getattr(model, "base_model_prefix", ""))

    def bare(key: str) -> str:
        return key[len(prefix) + 1:] if prefix and key.startswith(prefix + ".") else key

    have = {bare(k): v for k, v in header_shapes(files).items()}
    wrong = [(key, have[bare(key)], tuple(t.shape)) for key, t in model.state_dict().items()
             if bare(key) in have and have[bare(key)][0] != tuple(t.shape) and not bare(key).startswith(head_prefixes)]
    if wrong:
        shown = "; ".join(f"{bare(k)} is {tuple(h[0])} in {h[1]} but config.json builds {s}" for k, h, s in wrong[:3])
        more = f" (+{len(wrong) - 3} more)" if len(wrong) > 3 else ""
        raise XltError(f"the config.json of {source} disagrees with its weights: {shown}{more}; nothing was "
                       "allocated. Fix config.json (e.g. vocab_size, hidden_size) or re-save the checkpoint")


__all__ = ["header_shapes", "meta_model", "check_config_matches_weights"]
