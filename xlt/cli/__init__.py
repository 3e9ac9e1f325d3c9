"""`xlt` command line. Each group registers its commands on the apps in `common`; this module only
imports them and turns `XltError` into one clear message and a non-zero exit."""

import importlib
import sys

from xlt.cli.common import app, err_console
from xlt.errors import XltError

# Imported for their side effect of registering commands. A group whose module is not written yet is
# simply absent, so the CLI works while the package grows.
for _group in ("models", "tasks", "run", "sweep", "report", "score"):
    try:
        importlib.import_module(f"xlt.cli.{_group}")
    except ModuleNotFoundError as exc:
        if exc.name != f"xlt.cli.{_group}":
            raise


def main() -> None:
    try:
        app()
    except XltError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)


__all__ = ["app", "main"]
