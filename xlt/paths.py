"""Where xlt's built-in data lives: the task YAML files and the published reference numbers.

In a checkout (and an editable install, which imports the package from the checkout) they are the
top-level `tasks/` and `results/reference/` folders. A built wheel ships them as package data under
`xlt/_data/` (in the repository `xlt/_data/tasks` and `xlt/_data/reference` are symlinks to those
folders, and `[tool.setuptools.package-data]` in pyproject.toml copies their files into the wheel), so
both layouts resolve through the same `xlt/_data/...` path; the top-level folders are the fallback for a
checkout whose symlinks were lost (e.g. a Windows clone).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT_ROOT = PACKAGE_DIR.parent


def _first_dir(*candidates: Path) -> Path | None:
    for path in candidates:
        if path.is_dir():
            return path
    return None


def builtin_tasks_dir() -> Path | None:
    """The folder of built-in task YAML files, or None if this installation has none."""
    return _first_dir(PACKAGE_DIR / "_data" / "tasks", _CHECKOUT_ROOT / "tasks")


def reference_dir() -> Path | None:
    """The folder of published reference numbers (`<task>.csv`), or None if absent."""
    return _first_dir(PACKAGE_DIR / "_data" / "reference", _CHECKOUT_ROOT / "results" / "reference")


def reference_file(name: str) -> Path | None:
    """`results/reference/<name>` if it exists in this installation."""
    ref = reference_dir()
    if ref is None:
        return None
    path = ref / name
    return path if path.is_file() else None


def cache_home() -> Path:
    """xlt's cache folder: beside the feature cache (XLT_CACHE_DIR's parent) when that is set, else ~/.cache/xlt.
    Holds file hashes (xlt.models.fingerprint) and which predictions files have been verified (xlt.results)."""
    env = os.environ.get("XLT_CACHE_DIR")
    return Path(env).expanduser().parent if env else Path("~/.cache/xlt").expanduser()
