"""Local table formats every task type can read: tsv, csv, jsonl and parquet, exactly as the file holds them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from xlt.errors import XltError

TABLE_FORMATS = ("tsv", "csv", "jsonl", "parquet")


def read_table(path: Path, fmt: str | None = None):
    """Read a local file exactly as it is: every value as text, no quote handling in TSV, no NA guessing. A
    column named twice is refused (pandas would rename the second `label` to `label.1`); a jsonl line that is
    not one JSON object is refused naming its line."""
    import pandas as pd

    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".")
    try:
        if fmt == "tsv":
            # XNLI's TSV is unquoted and its fields contain `"`; "NA"/"null" are words, not missing values.
            _check_header(path, next(csv.reader(_first_line(path), delimiter="\t", quoting=csv.QUOTE_NONE), []))
            return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False,
                               na_filter=False, encoding="utf-8")
        if fmt == "csv":
            _check_header(path, next(csv.reader(_first_line(path)), []))
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8")
        if fmt == "jsonl":
            return pd.DataFrame.from_records(_jsonl_rows(path))
        if fmt == "parquet":
            frame = pd.read_parquet(path)
            _check_header(path, [str(c) for c in frame.columns])
            return frame
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise XltError(f"cannot read {path} as {fmt}: {exc}; check the file's format") from None
    raise XltError(f"unsupported data file format {fmt!r} for {path}; use one of {', '.join(TABLE_FORMATS)}")


def _first_line(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as fh:
        return [fh.readline()]


def _check_header(path: Path, columns: list[str]) -> None:
    seen: set[str] = set()
    for name in columns:
        name = name.strip()
        if name in seen:
            raise XltError(f"{path}: column {name!r} appears twice in the header; keep one (which of two "
                           "conflicting columns to read is not xlt's guess to make)")
        seen.add(name)


def _jsonl_rows(path: Path) -> list[dict]:
    """Each non-blank line as one JSON object; anything else names the file and the line."""
    def no_duplicate_keys(pairs):
        keys = [k for k, _ in pairs]
        twice = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
        if twice is not None:
            raise XltError(f"key {twice!r} twice")
        return dict(pairs)

    rows = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line, object_pairs_hook=no_duplicate_keys)
            except XltError as exc:
                raise XltError(f"{path}:{number}: {exc} in one object; keep one") from None
            except RecursionError:
                raise XltError(f"{path}:{number}: line {number} is nested too deeply to be a row") from None
            except json.JSONDecodeError as exc:
                raise XltError(f"{path}:{number}: line {number} is not JSON ({exc.msg} at column {exc.colno}); "
                               "each line of a jsonl file is one JSON object") from None
            if not isinstance(row, dict):
                kind = {list: "a list", str: "a string"}.get(type(row), type(row).__name__)
                raise XltError(f"{path}:{number}: line {number} is {kind}, not one JSON object; each line of a "
                               "jsonl file is one row {\"column\": value, ...}")
            rows.append(row)
    return rows
