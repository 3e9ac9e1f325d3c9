"""Names that become parts of file paths, and the check that a path xlt writes stays in its folder.

Task names, model slugs, split names and language codes end up in paths (`runs/<task>/<model>/<run_id>.json`,
`<data_dir>/<task>/<split>-<lang>.tsv`, `<export>/<split>-<lang>.json`), so they are checked once, where they
enter xlt (a task file, a RunSpec), against one conservative pattern: ASCII letters, digits, `_`, `-` and `.`,
starting with a letter, a digit or `_` (so never `.`, `..` or an option-like `-x`), at most `MAX_LENGTH`
characters. `inside(root, path)` is the last line of defence: every writer of records, predictions,
checkpoints, exported predictions and leaderboard files calls it before writing. Standard library only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from xlt.errors import XltError

MAX_LENGTH = 100
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
RULE = ("ASCII letters, digits, '_', '-' and '.', starting with a letter, a digit or '_', "
        f"at most {MAX_LENGTH} characters")


def is_name(value: Any) -> bool:
    """Whether `value` is a string that can safely be one part of a path (see the module docstring)."""
    return isinstance(value, str) and len(value) <= MAX_LENGTH and _NAME.fullmatch(value) is not None


def check_name(kind: str, value: Any, fix: str = "") -> str:
    """`value` if it is a valid name, else an XltError naming `kind` (e.g. "task name"), the value and the rule."""
    if not is_name(value):
        raise XltError(f"{kind} {value!r} is not a valid name: use {RULE}" + (f"; {fix}" if fix else ""))
    return value


def inside(root: str | Path, path: str | Path) -> Path:
    """`path`, after checking that it resolves to a place below `root`: the check every writer makes before
    writing, so no name, however it got in, can send a file elsewhere. `..` is resolved as written; symbolic
    links are not followed, so a folder the user linked elsewhere on purpose (a bigger disk) still works."""
    base = Path(os.path.abspath(root))
    target = Path(os.path.abspath(path))
    if target == base or base not in target.parents:
        raise XltError(f"refusing to write {path}: it resolves to {target}, which is not inside {base}; a name "
                       f"in the path is not a plain name ({RULE})")
    return Path(path)


__all__ = ["is_name", "check_name", "inside", "RULE", "MAX_LENGTH"]
