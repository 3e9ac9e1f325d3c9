"""Tatoeba and BUCC files read as XTREME leaves them; broken files refused naming the file, the line and the
fix. Tatoeba: the real LASER files in ../shared/data/tatoeba (5 languages), named through the language codes
of the task file. BUCC is not available locally: a small file set in its format is written here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from xlt.errors import XltError
from xlt.tasks import get_task
from xlt.tasktypes import retrieval_files as F

# google-research/xtreme evaluate.py TASK2LANGS; run_retrieval.py / utils_preprocess.py lang3_dict
XTREME_TATOEBA = ("ar he vi id jv tl eu ml ta te af nl de el bn hi mr ur fa fr it pt es bg ru ja ka ko th sw zh kk "
                  "tr et fi hu").split()
LASER_CODES = {"ara": "ar", "heb": "he", "vie": "vi", "ind": "id", "jav": "jv", "tgl": "tl", "eus": "eu",
               "mal": "ml", "tam": "ta", "tel": "te", "afr": "af", "nld": "nl", "deu": "de", "ell": "el",
               "ben": "bn", "hin": "hi", "mar": "mr", "urd": "ur", "fra": "fr", "ita": "it", "por": "pt",
               "spa": "es", "bul": "bg", "rus": "ru", "jpn": "ja", "kat": "ka", "kor": "ko", "tha": "th",
               "swh": "sw", "cmn": "zh", "kaz": "kk", "tur": "tr", "est": "et", "fin": "fi", "hun": "hu",
               "pes": "fa"}
SHARED = {"de": 1000, "fr": 1000, "zh": 1000, "ar": 1000, "sw": 390}   # languages in ../shared/data/tatoeba


def lang_codes() -> dict[str, str]:
    return dict(get_task("tatoeba").sources[0].lang_codes)


# --- Tatoeba ------------------------------------------------------------------------------------------------

def test_tatoeba_task_maps_xtremes_36_languages_to_lasers_codes():
    """The one mapping (in the task file) covers XTREME's 36 languages exactly, as XTREME maps them."""
    task = get_task("tatoeba")
    assert sorted(task.languages) == sorted(XTREME_TATOEBA)
    assert lang_codes() == {two: three for three, two in LASER_CODES.items()}


@pytest.mark.parametrize("lang", sorted(SHARED))
def test_reads_the_shared_tatoeba_files(shared_data, lang):
    """Every line of both real files, stripped, in order; the two sides line up."""
    folder = shared_data / "tatoeba"
    code = lang_codes()[lang]
    pair = F.read_tatoeba(folder, code)
    xx_path, en_path = folder / f"tatoeba.{code}-eng.{code}", folder / f"tatoeba.{code}-eng.eng"
    assert pair.paths == (xx_path, en_path)
    assert len(pair) == len(pair.english) == SHARED[lang]
    assert pair.sentences == [line.strip() for line in xx_path.read_text(encoding="utf-8").split("\n")[:-1]]
    assert pair.english == [line.strip() for line in en_path.read_text(encoding="utf-8").split("\n")[:-1]]
    assert all(pair.sentences) and all(pair.english)


def test_deu_pairs_are_translations(shared_data):
    pair = F.read_tatoeba(shared_data / "tatoeba", "deu")
    assert pair.sentences[0] == "Maria sagte, sie wisse nicht, wo Tom sei."
    assert pair.english[0] == "Mary said she didn't know where Tom was."


def test_unequal_tatoeba_sides_are_refused_naming_both_files(shared_data, tmp_path):
    for name in ("tatoeba.swh-eng.swh", "tatoeba.swh-eng.eng"):
        shutil.copy(shared_data / "tatoeba" / name, tmp_path / name)
    eng = tmp_path / "tatoeba.swh-eng.eng"
    eng.write_text("".join(eng.read_text(encoding="utf-8").splitlines(keepends=True)[:-1]), encoding="utf-8")
    with pytest.raises(XltError) as err:
        F.read_tatoeba(tmp_path, "swh")
    message = str(err.value)
    assert "tatoeba.swh-eng.swh has 390 lines" in message and "tatoeba.swh-eng.eng has 389" in message
    assert "restore" in message


def test_missing_tatoeba_file_is_named(tmp_path):
    (tmp_path / "tatoeba.deu-eng.deu").write_text("Hallo\n", encoding="utf-8")
    with pytest.raises(XltError, match=r"tatoeba\.deu-eng\.eng") as err:
        F.read_tatoeba(tmp_path, "deu")
    assert "tatoeba.deu-eng.deu" not in str(err.value).split(";")[0]


def test_line_ends_and_encoding(tmp_path):
    """CRLF and CR end lines as in Python's text files, a final line end starts no line, a line separator
    inside a sentence (U+2028) does not split it, surrounding spaces are stripped (evaluate_retrieval.py's
    `l.strip()`); non-UTF-8 is refused with its line."""
    (tmp_path / "tatoeba.fra-eng.fra").write_bytes("Bonjour\u2028toi.\r\nMerci.\r Oui. ".encode("utf-8"))
    (tmp_path / "tatoeba.fra-eng.eng").write_bytes(b"Hello you.\nThanks.\nYes.\n")
    pair = F.read_tatoeba(tmp_path, "fra")
    assert pair.sentences == ["Bonjour\u2028toi.", "Merci.", "Oui."] and len(pair.english) == 3   # stripped
    (tmp_path / "tatoeba.fra-eng.fra").write_bytes(b"Bonjour\nMerci \xe9\nOui\n")
    with pytest.raises(XltError, match=r"tatoeba\.fra-eng\.fra:2: not UTF-8"):
        F.read_tatoeba(tmp_path, "fra")


def test_empty_tatoeba_files_are_refused(tmp_path):
    for name in ("tatoeba.deu-eng.deu", "tatoeba.deu-eng.eng"):
        (tmp_path / name).write_text("", encoding="utf-8")
    with pytest.raises(XltError, match="empty"):
        F.read_tatoeba(tmp_path, "deu")


# --- BUCC ---------------------------------------------------------------------------------------------------

DE = ["de-000000001\tDer Hund schläft.", "de-000000002\tEs regnet seit Montag.", "de-000000003\tIch lese.",
      "de-000000004\tDie Brücke ist alt."]
EN = ["en-000000001\tThe bridge is old.", "en-000000002\tIt has been raining since Monday.",
      "en-000000003\tPrices rose.", "en-000000004\tThe dog is sleeping."]
GOLD = ["de-000000001\ten-000000004", "de-000000002\ten-000000002", "de-000000004\ten-000000001"]


def write_bucc(folder: Path, de=DE, en=EN, gold=GOLD, lang: str = "de", split: str = "dev") -> tuple[Path, ...]:
    paths = F.bucc_paths(folder, lang, split)
    for path, lines in zip(paths, (de, en, gold)):
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return paths


def test_bucc_paths_are_xtremes_names(tmp_path):
    assert [p.name for p in F.bucc_paths(tmp_path, "zh", "test")] == ["zh-en.test.zh", "zh-en.test.en",
                                                                    "zh-en.test.gold"]


def test_reads_a_bucc_split(tmp_path):
    write_bucc(tmp_path)
    data = F.read_bucc(tmp_path, "de", "dev")
    assert data.source.ids == [line.split("\t")[0] for line in DE]
    assert data.source.sentences[1] == "Es regnet seit Montag."
    assert data.target.ids[3] == "en-000000004" and data.target.sentences[3] == "The dog is sleeping."
    assert data.gold == [tuple(line.split("\t")) for line in GOLD]


def test_repeated_gold_pairs_count_once_and_blank_gold_lines_are_skipped(tmp_path):
    """XTREME reads gold as a set of stripped lines."""
    write_bucc(tmp_path, gold=[GOLD[0], "", GOLD[1], GOLD[0] + "  "])
    assert F.read_bucc(tmp_path, "de", "dev").gold == [tuple(GOLD[0].split("\t")), tuple(GOLD[1].split("\t"))]


@pytest.mark.parametrize("line, problem", [
    ("de-000000009 Ein Satz ohne Tab.", "found 1 tab-separated field"),
    ("de-000000009\tEin\tSatz", "found 3 tab-separated field"),
    ("\tEin Satz.", "empty sentence id"),
    ("de-000000002\tDoppelt.", "duplicate sentence id 'de-000000002', first on line 2"),
])
def test_malformed_corpus_lines_are_refused_with_file_and_line(tmp_path, line, problem):
    src, _, _ = write_bucc(tmp_path, de=DE + [line])
    with pytest.raises(XltError) as err:
        F.read_bucc(tmp_path, "de", "dev")
    assert f"{src}:5:" in str(err.value) and problem in str(err.value)


@pytest.mark.parametrize("line, problem", [
    ("de-000000003", "expected `xx_id<TAB>en_id`"),
    ("de-000000003\ten-000000003\tx", "expected `xx_id<TAB>en_id`"),
    ("de-000000009\ten-000000003", "id 'de-000000009' is not in {src}"),
    ("de-000000003\ten-000000009", "id 'en-000000009' is not in {tgt}"),
])
def test_bad_gold_lines_are_refused_naming_the_id_and_corpus(tmp_path, line, problem):
    src, tgt, gold = write_bucc(tmp_path, gold=GOLD + [line])
    with pytest.raises(XltError) as err:
        F.read_bucc(tmp_path, "de", "dev")
    assert f"{gold}:4:" in str(err.value) and problem.format(src=src, tgt=tgt) in str(err.value)


def test_missing_or_empty_bucc_files_are_refused(tmp_path):
    src, tgt, gold = write_bucc(tmp_path)
    gold.unlink()
    with pytest.raises(XltError, match=r"missing BUCC file\(s\) .*de-en\.dev\.gold"):
        F.read_bucc(tmp_path, "de", "dev")
    gold.write_text("\n", encoding="utf-8")
    with pytest.raises(XltError, match="no gold pairs"):
        F.read_bucc(tmp_path, "de", "dev")
    src.write_text("", encoding="utf-8")
    with pytest.raises(XltError, match="no sentences"):
        F.read_bucc(tmp_path, "de", "dev")


def test_bucc_task_is_xtremes_setup():
    task = get_task("bucc2018")
    assert task.languages == ("de", "fr", "ru", "zh") and task.primary_metric == "f1"
    assert task.option_values == {"search": "mine", "neighbourhood": 4, "threshold_split": "dev"}
    assert task.eval_splits == ("test", "dev") and task.hparams == {"max_seq_len": 512, "pooling": "mean"}
