"""Task types: the registry that maps a task file's `type:` to the module that implements it.

    from xlt.tasktypes import get_task_type, register
    tt = get_task_type("pair-classification")

Built-in types are imported lazily on first lookup; `register(MyType())` adds one from anywhere (a test,
a plugin), and a package can expose types through the `xlt.task_types` entry-point group.
"""

from __future__ import annotations

import importlib

from xlt.errors import XltError
from xlt.tasktypes.base import TaskType

# type name -> module defining `TASK_TYPE`; the only place in xlt that spells the built-in names
BUILTIN = {
    "pair-classification": "xlt.tasktypes.pair_classification",
    "token-classification": "xlt.tasktypes.token_classification",
    "extractive-qa": "xlt.tasktypes.extractive_qa",
}

# the type of a record that names none: records written before task types existed were all sentence pairs
FIRST_TYPE = "pair-classification"

_REGISTRY: dict[str, TaskType] = {}


def register(task_type: TaskType) -> TaskType:
    """Make `task_type` available under `task_type.name` (replacing a type of the same name)."""
    if not getattr(task_type, "name", None):
        raise XltError(f"{type(task_type).__name__} has no `name`; set the class attribute")
    _REGISTRY[task_type.name] = task_type
    return task_type


def _load_builtin(name: str) -> None:
    module = importlib.import_module(BUILTIN[name])
    register(module.TASK_TYPE)


def _load_entry_points() -> None:
    from importlib.metadata import entry_points

    for ep in entry_points(group="xlt.task_types"):
        if ep.name not in _REGISTRY:
            register(ep.load())


def names() -> list[str]:
    """Every known type name: built-in, registered and from entry points."""
    _load_entry_points()
    return list(dict.fromkeys([*BUILTIN, *_REGISTRY]))


def get_task_type(name: str) -> TaskType:
    """The registered type called `name`; an XltError listing the known ones otherwise."""
    if name not in _REGISTRY and name in BUILTIN:
        _load_builtin(name)
    if name not in _REGISTRY:
        _load_entry_points()
    if name not in _REGISTRY:
        raise XltError(f"unknown task type {name!r}; known: {', '.join(names())}")
    return _REGISTRY[name]


__all__ = ["TaskType", "register", "get_task_type", "names", "BUILTIN", "FIRST_TYPE"]
