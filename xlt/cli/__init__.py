"""`xlt` command line. Each group registers its commands on the apps in `common`; this module only
imports them and turns `XltError` into one clear message and a non-zero exit."""

import sys

from rich.markup import escape

from xlt.cli import bench, bench_retrieval, models, report, run, score, sweep, tasks  # noqa: F401 - imported to register their commands
from xlt.cli import eval as _eval  # noqa: F401 - `xlt eval`
from xlt.cli.common import app, err_console
from xlt.errors import XltError


def main() -> None:
    try:
        app()
    except XltError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)


__all__ = ["app", "main"]
