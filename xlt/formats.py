"""Local table formats every task type can read: tsv, csv, jsonl and parquet, exactly as the file holds them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from xlt.errors import XltError

TABLE_FORMATS = ("tsv", "csv", "jsonl", "parquet")


def read_table(path: Path, fmt: str | None = None):
    """Read a local file exactly as it is: every value as text, no quote handling in TSV, no NA guessing."""
    import pandas as pd

    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".")
    try:
        if fmt == "tsv":
            # XNLI's TSV is unquoted and its fields contain `"`; "NA"/"null" are words, not missing values.
            return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False,
                               na_filter=False, encoding="utf-8")
        if fmt == "csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8")
        if fmt == "jsonl":
            with open(path, encoding="utf-8") as fh:
                rows = [json.loads(line) for line in fh if line.strip()]
            return pd.DataFrame.from_records(rows)
        if fmt == "parquet":
            return pd.read_parquet(path)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise XltError(f"cannot read {path} as {fmt}: {exc}; check the file's format") from None
    raise XltError(f"unsupported data file format {fmt!r} for {path}; use one of {', '.join(TABLE_FORMATS)}")
