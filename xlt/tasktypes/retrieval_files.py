"""The files of the two retrieval tasks, read as XTREME's download script leaves them.

Tatoeba (LASER's v1 release, `scripts/download_data.sh: download_tatoeba`): for a language with ISO 639-3 code
xxx, `tatoeba.xxx-eng.xxx` and `tatoeba.xxx-eng.eng`, one sentence a line, no header; line i of one file
translates line i of the other. Sentences are stripped of surrounding white space, as
`evaluate_retrieval.py` reads them.

BUCC 2018 (`download_bucc18`: the shared task's sample renamed `dev`, its training set renamed `test`), for
a language xx: `xx-en.<split>.xx` and `xx-en.<split>.en`, one `id<TAB>sentence` line per sentence, and
`xx-en.<split>.gold`, one `xx_id<TAB>en_id` line per parallel pair.

Lines end at `\\n`, `\\r\\n` or `\\r`, as Python's text files split them. Every problem names the file, the line
and the fix: unequal Tatoeba sides, a BUCC line without exactly one tab, an empty or duplicate id, a gold id
that is not in its corpus.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xlt.errors import XltError

TATOEBA_SOURCE = "LASER's Tatoeba v1 (google-research/xtreme scripts/download_data.sh, download_tatoeba)"
BUCC_SOURCE = "BUCC 2018 as XTREME downloads it (google-research/xtreme scripts/download_data.sh, download_bucc18)"


def read_lines(path: str | Path) -> list[str]:
    """A UTF-8 text file's lines without their line ends (a final line end does not start a line)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise XltError(f"{path} does not exist") from None
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise XltError(f"{path}:{line}: not UTF-8 ({exc.reason} at byte {exc.start}); save the file as UTF-8") \
            from None
    except OSError as exc:
        raise XltError(f"cannot read {path}: {exc.strerror or exc}") from None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


# --- Tatoeba -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TatoebaPair:
    """One language's test set: sentence i of `sentences` translates sentence i of `english`."""

    sentences: list[str]
    english: list[str]
    paths: tuple[Path, Path]

    def __len__(self) -> int:
        return len(self.sentences)


def tatoeba_paths(folder: str | Path, code: str) -> tuple[Path, Path]:
    """LASER's file names for ISO 639-3 `code` (e.g. deu): the language's side and the English side."""
    folder = Path(folder)
    return folder / f"tatoeba.{code}-eng.{code}", folder / f"tatoeba.{code}-eng.eng"


def read_tatoeba(folder: str | Path, code: str) -> TatoebaPair:
    """Both sides of one language's Tatoeba test set; their line counts must be equal."""
    return read_aligned(*tatoeba_paths(folder, code))


def read_aligned(xx_path: str | Path, en_path: str | Path) -> TatoebaPair:
    """Two files, line i of one translating line i of the other (LASER's Tatoeba layout), stripped."""
    xx_path, en_path = Path(xx_path), Path(en_path)
    missing = [p for p in (xx_path, en_path) if not p.is_file()]
    if missing:
        raise XltError(f"missing Tatoeba file(s) {', '.join(map(str, missing))}; put {TATOEBA_SOURCE} there "
                       f"(files tatoeba.<xxx>-eng.<xxx> and tatoeba.<xxx>-eng.eng)")
    xx, en = [s.strip() for s in read_lines(xx_path)], [s.strip() for s in read_lines(en_path)]
    if len(xx) != len(en):
        raise XltError(f"{xx_path} has {len(xx)} lines but {en_path} has {len(en)}: line i of one must translate "
                       f"line i of the other; restore both files from {TATOEBA_SOURCE}")
    if not xx:
        raise XltError(f"{xx_path} and {en_path} are empty; restore them from {TATOEBA_SOURCE}")
    return TatoebaPair(xx, en, (xx_path, en_path))


# --- BUCC 2018 ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BuccCorpus:
    """One side of a BUCC split: sentence ids and texts in file order."""

    ids: list[str]
    sentences: list[str]
    path: Path

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class BuccSplit:
    """One language's split: the xx corpus, the English corpus and the gold (xx_id, en_id) pairs."""

    source: BuccCorpus
    target: BuccCorpus
    gold: list[tuple[str, str]]


def bucc_paths(folder: str | Path, lang: str, split: str) -> tuple[Path, Path, Path]:
    """XTREME's names for language `lang` (de fr ru zh) and split (dev, test): xx side, English side, gold."""
    folder = Path(folder)
    return tuple(folder / f"{lang}-en.{split}.{ext}" for ext in (lang, "en", "gold"))  # type: ignore[return-value]


def read_bucc_corpus(path: str | Path) -> BuccCorpus:
    """`id<TAB>sentence` lines; ids are stripped of surrounding white space and must be unique."""
    path = Path(path)
    ids: list[str] = []
    sentences: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(read_lines(path), 1):
        fields = line.split("\t")
        if len(fields) != 2:
            raise XltError(f"{path}:{number}: expected `id<TAB>sentence`, found {len(fields)} tab-separated "
                           f"field(s) in {line[:80]!r}; fix the line (BUCC corpora have one sentence a line)")
        sid = fields[0].strip()
        if not sid:
            raise XltError(f"{path}:{number}: empty sentence id; give every line an id (e.g. de-000000001)")
        if sid in first_line:
            raise XltError(f"{path}:{number}: duplicate sentence id {sid!r}, first on line {first_line[sid]}; "
                           f"ids must be unique (gold pairs name sentences by id)")
        first_line[sid] = number
        ids.append(sid)
        sentences.append(fields[1])
    if not ids:
        raise XltError(f"{path} has no sentences; restore it from {BUCC_SOURCE}")
    return BuccCorpus(ids, sentences, path)


def read_bucc_gold(path: str | Path, source: BuccCorpus, target: BuccCorpus) -> list[tuple[str, str]]:
    """`xx_id<TAB>en_id` lines, in file order; blank lines are skipped and a repeated pair counts once (XTREME
    reads gold as a set). Every id must be in its corpus, and an xx sentence has at most one gold translation."""
    path = Path(path)
    src_ids, tgt_ids = set(source.ids), set(target.ids)
    pairs: dict[tuple[str, str], None] = {}
    line_of: dict[str, tuple[int, str]] = {}   # source id -> (line, its gold target)
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.strip().split("\t")]
        if len(fields) != 2 or not all(fields):
            raise XltError(f"{path}:{number}: expected `xx_id<TAB>en_id`, found {line[:80]!r}; fix the line")
        for sid, known, corpus in ((fields[0], src_ids, source), (fields[1], tgt_ids, target)):
            if sid not in known:
                raise XltError(f"{path}:{number}: id {sid!r} is not in {corpus.path}; the gold file and the "
                               f"corpora must come from the same BUCC release and split")
        first = line_of.setdefault(fields[0], (number, fields[1]))
        if first[1] != fields[1]:   # a sentence's predictions row holds one gold translation (xlt.tasktypes.retrieval)
            raise XltError(f"{path}:{number}: {fields[0]!r} already has the gold translation {first[1]!r} (line "
                           f"{first[0]}); BUCC's gold pairs are one-to-one: keep one of the two lines")
        pairs[(fields[0], fields[1])] = None
    if not pairs:
        raise XltError(f"{path} has no gold pairs; restore it from {BUCC_SOURCE}")
    return list(pairs)


def read_bucc(folder: str | Path, lang: str, split: str) -> BuccSplit:
    """One language's split: both corpora and the gold pairs (all three files must exist)."""
    return read_bucc_files(*bucc_paths(folder, lang, split))


def read_bucc_files(src_path: str | Path, tgt_path: str | Path, gold_path: str | Path) -> BuccSplit:
    """The xx corpus, the English corpus and their gold pairs, from XTREME's three files."""
    src_path, tgt_path, gold_path = Path(src_path), Path(tgt_path), Path(gold_path)
    missing = [p for p in (src_path, tgt_path, gold_path) if not p.is_file()]
    if missing:
        raise XltError(f"missing BUCC file(s) {', '.join(map(str, missing))}; put {BUCC_SOURCE} there "
                       f"(files <xx>-en.<split>.<xx|en|gold>)")
    source, target = read_bucc_corpus(src_path), read_bucc_corpus(tgt_path)
    return BuccSplit(source, target, read_bucc_gold(gold_path, source, target))
