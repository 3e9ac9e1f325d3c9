"""The data and the tiny checkpoint of the protocol comparison in docs/protocols.md ("One run per protocol").

    python scripts/protocol_demo.py OUT        # run from the repository root, with ../shared/data beside it

writes OUT/data/xnli/ and OUT/tiny-mdeberta/. ../shared/data has no XNLI test split and no machine
translations, so the demo cuts what it has: the English, German and French XNLI validation files are parallel
(row i is the same pair in each language), and their rows are split three ways:

    rows    0-829   validation-<lang>.tsv                 (dev: selection, and few-shot's shots)
    rows  830-1659  test-<lang>.tsv                       (evaluated)
    rows 1660-2489  train-de.tsv, train-fr.tsv            (stand-ins for machine-translated train splits:
                                                           human translations of other pairs)
    English rows 830-1659 as translate-test/test-<lang>.tsv (the "English translation" of the German and French
                                                           test splits: the English originals, row by row)

plus train-en.tsv, the 15,001 MultiNLI pairs of ../shared/data. The checkpoint is the tests' tiny random
mDeBERTa-v3-shaped model (tests/factories.py: 2 layers, hidden size 32, a SentencePiece model trained on
../shared/data), so the numbers show the protocols running side by side on real files, not what the
protocols are worth: its accuracies are near chance.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "xnli"
CUTS = {"validation": (0, 830), "test": (830, 1660), "train": (1660, 2490)}


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", quoting=3, dtype=str, keep_default_na=False)


def _write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep="\t", index=False, quoting=3)


def build_data(out: Path) -> Path:
    xnli = out / "data" / "xnli"
    _write(_read(SHARED / "train-en.tsv"), xnli / "train-en.tsv")
    english = _read(SHARED / "validation-en.tsv")
    for lang in ("en", "de", "fr"):
        rows = _read(SHARED / f"validation-{lang}.tsv")
        for split, (start, end) in CUTS.items():
            if split == "train" and lang == "en":
                continue   # English trains on MultiNLI
            _write(rows.iloc[start:end], xnli / f"{split}-{lang}.tsv")
        if lang != "en":
            start, end = CUTS["test"]
            _write(english.iloc[start:end], xnli / "translate-test" / f"test-{lang}.tsv")
    return out / "data"


def build_checkpoint(out: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from tests import factories

    spm_model = factories.train_spm(out / "spm")
    return factories.tiny_checkpoint(out / "tiny-mdeberta", factories.DEBERTA_V3, spm_model)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    out = Path(argv[0])
    print(build_data(out))
    print(build_checkpoint(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
