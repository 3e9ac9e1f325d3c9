"""The `evaluate` protocol's set-up: a checkpoint's own trained head, its labels matched to the task's by name.

    loaded, labels = load_own_head(spec, task, task_type)   # LoadedModel whose logits are in the task's order

`xlt eval` (xlt.cli.eval) evaluates a checkpoint someone already fine-tuned; the runner skips training and
selection for it (`RunSpec.fine_tunes`) and calls this instead of loading the task type's fresh head. The head
is loaded at the checkpoint's own width (its config.json `id2label`), never the task's, and must be the head the
task type needs, trained: a config.json whose `architectures` name another head (a sequence classifier on a
tagging task, whose classifier has the same shape as a tagger's), or weights that lack head tensors (a
pretrained checkpoint without a classifier, one without `qa_outputs` on a QA task) are refused rather than
given a random head. A plain encoder (the retrieval types' head) is loaded as it is. Labels are matched by
xlt.labelmatch, from config.json before any weight is read, and the logits reordered to the task's labels by
xlt.models.label_view.LabelView.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from xlt.errors import XltError
from xlt.labelmatch import LabelMatch, match_labels


def checkpoint_labels(config: dict, source: str) -> tuple[str, ...]:
    """The checkpoint's label names in id order, from config.json (transformers' LABEL_i when it has none)."""
    id2label = config.get("id2label")
    if not id2label:
        count = config.get("num_labels", 2)
        return tuple(f"LABEL_{i}" for i in range(int(count)))
    try:
        by_id = {int(k): str(v) for k, v in dict(id2label).items()}
    except (TypeError, ValueError):
        by_id = {}
    if sorted(by_id) != list(range(len(id2label))):
        raise XltError(f"the id2label of {source}'s config.json is not ids 0..n-1 mapped to names ({id2label!r}); "
                       "fix the config")
    return tuple(by_id[i] for i in range(len(by_id)))


def _check_architecture(config: dict, head, source: str, task_name: str) -> None:
    """config.json's `architectures` must name the head the task type needs (the head table's suffix)."""
    names = config.get("architectures") or []
    if not names:
        raise XltError(f"{source}'s config.json does not say which head the checkpoint has (no `architectures`); "
                       f"task {task_name!r} needs one whose name ends in {head.architecture} (add it, e.g. "
                       f"\"architectures\": [\"DebertaV2{head.architecture}\"], if that is what it is)")
    if not any(str(name).endswith(head.architecture) for name in names):
        raise XltError(f"checkpoint {source} is a {', '.join(map(str, names))}, but task {task_name!r} needs a "
                       f"*{head.architecture} head; evaluate it on a task of its kind, or fine-tune it with xlt run")


def check_checkpoint(spec, task, ttype) -> tuple[int | None, LabelMatch | None]:
    """What config.json alone tells, before any weight is read: that the checkpoint has the head the task needs,
    its width, and its labels matched to the task's (None, None for a plain encoder). XltError otherwise."""
    from xlt.models import REGISTRY, resolve_model
    from xlt.models.heads import get_head

    head = get_head(ttype.head)
    if head.outputs == 0:   # a plain encoder (the retrieval types): no head to check, no labels
        return None, None
    info = resolve_model(spec.model)
    if REGISTRY.get(info.name) is info:   # a registry entry is a pretrained encoder: no task head at all
        raise XltError(f"{spec.model} is a pretrained encoder (xlt models list) with no fine-tuned head; xlt eval "
                       "evaluates a checkpoint already fine-tuned for the task (a hub id or folder, or a run that "
                       f"saved its model). To fine-tune it: xlt run --model {spec.model} --task {task.name}")
    config = dict(info.config)
    _check_architecture(config, head, spec.model, task.name)
    if not ttype.uses_labels:
        if spec.label_map is not None:
            raise XltError(f"task {task.name!r} (type {ttype.name}) has no labels; drop --label-map")
        return ttype.num_outputs(task), None
    labels = checkpoint_labels(config, spec.model)
    return len(labels), match_labels(labels, task.label_names, spec.label_map, task_name=f"task {task.name!r}")


def load_own_head(spec, task, ttype, emit: Callable[[dict], None] = lambda event: None
                  ) -> tuple[Any, dict[str, Any] | None]:
    """(the LoadedModel with its logits in the task's label order, what the record keeps of the label match:
    None for a type without labels). XltError for a checkpoint without the trained head the task needs."""
    from xlt.models import load_model
    from xlt.models.heads import get_head
    from xlt.models.label_view import LabelView

    width, match = check_checkpoint(spec, task, ttype)
    options = ttype.head_options(task, spec.hparams)
    if width is None:
        return load_model(spec.model, ttype.head, ttype.num_outputs(task), impl=spec.impl, **options), None
    loaded = load_model(spec.model, ttype.head, width, impl=spec.impl, **options)
    if loaded.new_tensors:
        shown = ", ".join(loaded.new_tensors[:4]) + (" ..." if len(loaded.new_tensors) > 4 else "")
        raise XltError(f"checkpoint {spec.model} has no trained *{get_head(ttype.head).architecture} head: {shown} "
                       "are not in its weights and would be random. xlt eval evaluates a checkpoint's own head; "
                       "pass one fine-tuned for this kind of task, or fine-tune this one with xlt run")
    if match is None:
        return loaded, None
    if match.unused:
        emit({"event": "warning", "message": f"checkpoint labels {', '.join(match.unused)} are not labels of task "
              f"{task.name!r}: the model predicts among the task's labels only"})
    if match.never_predicted:
        emit({"event": "warning", "message": f"task labels {', '.join(match.never_predicted)} have no checkpoint "
              "label (--label-map): they are never predicted and count as errors"})
    view = LabelView(loaded.model, match.columns, width=width)
    record = {**match.to_record(), "applied": "checkpoint logits reordered to the task's labels (and restricted "
              "to them) before decoding"}
    return dataclasses.replace(loaded, model=view), record


__all__ = ["load_own_head", "check_checkpoint", "checkpoint_labels"]
