"""Two-column CoNLL, the file format of XTREME's tagging data: one `token<TAB>tag` line per word, a blank line
between sentences, no header. XTREME's download script writes PAN-X and UD-POS this way, and its leaderboard
reads predictions as one tag per line in the same layout (google-research/xtreme evaluate.py, `read_tag`).

    frame = read_conll("panx/validation-de.tsv")     # columns tokens, tags: one list per sentence
    tags = read_tag_file("predictions.tsv")          # [[tag, ...], ...]: `tag` or `token<TAB>tag` lines

A line `-DOCSTART- ...` (CoNLL-2003's document marker) is skipped. A whitespace-only line separates sentences,
as a blank one does. Anything else without exactly one tab is an error naming the file, the line and the fix.
"""

from __future__ import annotations

from pathlib import Path

from xlt.errors import XltError

DOCSTART = "-DOCSTART-"


def _text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise XltError(f"{path} is not UTF-8 ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise XltError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_sentences(path: str | Path, columns: tuple[int, ...]) -> list[list[list[str]]]:
    """Sentences of a CoNLL file whose lines have one of `columns` field counts (1: tag only, 2: token and
    tag), each a list of the lines' fields."""
    path = Path(path)
    sentences: list[list[list[str]]] = []
    current: list[list[str]] = []
    for number, line in enumerate(_text(path).split("\n"), 1):
        line = line.rstrip("\r")
        if not line or line.isspace():
            if current:
                sentences.append(current)
                current = []
            continue
        fields = line.split("\t")
        if len(fields) not in columns:
            if line.startswith(DOCSTART):
                continue
            want = " or ".join({1: "`tag`", 2: "`token<TAB>tag`"}[c] for c in columns)
            raise XltError(f"{path}:{number}: expected {want}, found {len(fields)} tab-separated field(s) in "
                           f"{line[:80]!r}; fix the line (sentences are separated by a blank line, no header)")
        if fields[0].startswith(DOCSTART):
            continue
        current.append(fields)
    if current:
        sentences.append(current)
    return sentences


def read_conll(path: str | Path):
    """A two-column CoNLL file as a frame with columns `tokens` and `tags` (lists, one row per sentence).
    The columns are named by role (`frame.attrs["columns_by_role"]`): the file has no header to name them."""
    import pandas as pd

    sentences = read_sentences(path, (2,))
    frame = pd.DataFrame({"tokens": [[f[0] for f in s] for s in sentences],
                          "tags": [[f[1].strip() for f in s] for s in sentences]})
    frame.attrs["columns_by_role"] = True
    return frame


def read_tag_file(path: str | Path) -> list[list[str]]:
    """Predicted tags per sentence from a file of `tag` or `token<TAB>tag` lines (the last field is the tag)."""
    return [[f[-1].strip() for f in s] for s in read_sentences(path, (1, 2))]


def write_conll(path: str | Path, tokens, tags) -> Path:
    """Write sentences as two-column CoNLL (the inverse of `read_conll`)."""
    path = Path(path)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for words, labels in zip(tokens, tags):
            fh.writelines(f"{w}\t{t}\n" for w, t in zip(words, labels))
            fh.write("\n")
    return path
