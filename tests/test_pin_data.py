"""Pins on the feature cache's keys and on batching, against independent computations: a tokenizer called
directly, transformers' own padding, and plain-Python orderings."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from tests import factories
from tests.factories import featurize
from tests import hypothesis_home  # noqa: F401  (hypothesis' files in a temp dir, not ./.hypothesis)

# Imports from xlt in one place (data.Features is becoming named ragged arrays).
from xlt.data import (Features, batch_order, batches, cache_path, collate, num_batches,
                      padding_efficiency, restore_order, tokenizer_fingerprint)
from xlt.tasks import load_split

PROPERTY = settings(max_examples=80, deadline=None, derandomize=True, database=None)


def pawsx_sentences(shared_data, rows=900):
    lines = (shared_data / "pawsx" / "validation-en.tsv").read_text(encoding="utf-8").splitlines()[1:rows + 1]
    return [s for line in lines for s in line.split("\t")[1:3]]


@pytest.fixture(scope="module")
def two_tokenizers(tmp_path_factory, shared_data, spm_model):
    """Two DeBERTa tokenizers with the same class and the same vocabulary size (1000) but different pieces:
    the project's test SentencePiece model (XNLI text) and one trained here on PAWS-X text."""
    import sentencepiece as spm

    other = tmp_path_factory.mktemp("spm-pawsx")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(pawsx_sentences(shared_data)), model_prefix=str(other / "spm"),
        vocab_size=factories.VOCAB_SIZE, pad_id=0, bos_id=1, eos_id=2, unk_id=3, pad_piece="[PAD]",
        bos_piece="[CLS]", eos_piece="[SEP]", unk_piece="[UNK]", user_defined_symbols=["[MASK]"],
        character_coverage=0.9995, model_type="unigram", minloglevel=2, num_threads=1)
    a = AutoTokenizer.from_pretrained(factories.deberta_tokenizer_dir(tmp_path_factory.mktemp("tok-a"), spm_model))
    b = AutoTokenizer.from_pretrained(factories.deberta_tokenizer_dir(tmp_path_factory.mktemp("tok-b"),
                                                                      other / "spm.model"))
    assert type(a) is type(b) and len(a) == len(b) and a.vocab_size == b.vocab_size
    assert a.get_vocab() != b.get_vocab()
    return a, b


@pytest.fixture(scope="module")
def fr_split(shared_data):
    return load_split("xnli", "validation", "fr", data_dir=shared_data).head(300)


def same_features(x: Features, y: Features) -> bool:
    return (np.array_equal(x.input_ids, y.input_ids) and np.array_equal(x.offsets, y.offsets)
            and np.array_equal(x.labels, y.labels) and np.array_equal(x.index, y.index)
            and (x.token_type_ids is None) == (y.token_type_ids is None)
            and (x.token_type_ids is None or np.array_equal(x.token_type_ids, y.token_type_ids)))


def test_tokenizers_with_the_same_vocab_size_never_share_a_cache_entry(two_tokenizers, fr_split, tmp_path):
    """Catches a cache key that identifies a tokenizer by its class, name or vocabulary size: the second
    tokenizer would get the first one's ids from the cache."""
    a, b = two_tokenizers
    assert tokenizer_fingerprint(a) != tokenizer_fingerprint(b)
    assert cache_path(fr_split, a, 64, tmp_path) != cache_path(fr_split, b, 64, tmp_path)
    from_a = featurize(fr_split, a, 64, cache_dir=tmp_path)
    from_b = featurize(fr_split, b, 64, cache_dir=tmp_path)          # the cache now holds a's features
    assert same_features(from_b, featurize(fr_split, b, 64, use_cache=False))
    assert not same_features(from_a, from_b)
    again = featurize(fr_split, a, 64, cache_dir=tmp_path)           # a's entry is still a's
    assert same_features(again, featurize(fr_split, a, 64, use_cache=False))


def test_a_tokenizer_with_the_same_vocabulary_but_another_normalizer_gets_its_own_entry(two_tokenizers, fr_split,
                                                                                      tmp_path):
    """Catches a fingerprint built from the vocabulary alone: lower-casing in the normalizer changes every id
    of a cased word while the pieces, their ids and the special tokens stay the same."""
    from tokenizers import normalizers

    a, _ = two_tokenizers
    lower = copy.deepcopy(a)
    lower.backend_tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Lowercase(), *([a.backend_tokenizer.normalizer] if a.backend_tokenizer.normalizer else [])])
    assert lower.get_vocab() == a.get_vocab() and lower("Paris")["input_ids"] != a("Paris")["input_ids"]
    assert tokenizer_fingerprint(lower) != tokenizer_fingerprint(a)
    featurize(fr_split, a, 64, cache_dir=tmp_path)
    assert same_features(featurize(fr_split, lower, 64, cache_dir=tmp_path),
                         featurize(fr_split, lower, 64, use_cache=False))


def test_the_same_tokenizer_loaded_twice_shares_its_entry(two_tokenizers, spm_model, fr_split, tmp_path):
    a, _ = two_tokenizers
    twin = AutoTokenizer.from_pretrained(factories.deberta_tokenizer_dir(tmp_path / "twin", spm_model))
    assert tokenizer_fingerprint(twin) == tokenizer_fingerprint(a)
    assert cache_path(fr_split, twin, 64, tmp_path) == cache_path(fr_split, a, 64, tmp_path)


def test_cache_entries_follow_length_split_and_file_content(two_tokenizers, shared_data, tmp_path):
    """Catches a key without the max length, the language/split, or the bytes read: each change below must
    produce the features of a direct tokenisation, not a cached entry of another variant."""
    a, _ = two_tokenizers
    cache = tmp_path / "cache"
    fr = load_split("xnli", "validation", "fr", data_dir=shared_data).head(40)
    de = load_split("xnli", "validation", "de", data_dir=shared_data).head(40)
    for split, length in [(fr, 64), (fr, 24), (de, 64)]:
        assert same_features(featurize(split, a, length, cache_dir=cache),
                             featurize(split, a, length, use_cache=False))
    # a data directory whose validation-fr file has other rows (same name, same split, same language)
    other = tmp_path / "other" / "xnli"
    other.mkdir(parents=True)
    lines = (shared_data / "xnli" / "validation-fr.tsv").read_text(encoding="utf-8").splitlines()
    (other / "validation-fr.tsv").write_text("\n".join([lines[0], *lines[:0:-1]]) + "\n", encoding="utf-8")
    moved = load_split("xnli", "validation", "fr", data_dir=tmp_path / "other").head(40)
    assert moved.frame["text_a"].tolist() != fr.frame["text_a"].tolist()
    assert same_features(featurize(moved, a, 64, cache_dir=cache), featurize(moved, a, 64, use_cache=False))
    assert len(list(cache.rglob("*.npz"))) == 4


def test_a_damaged_cache_entry_is_rebuilt(two_tokenizers, fr_split, shared_data, tmp_path):
    a, _ = two_tokenizers
    path = cache_path(fr_split, a, 64, tmp_path)
    featurize(fr_split, a, 64, cache_dir=tmp_path)
    path.write_bytes(b"not a numpy file")
    assert same_features(featurize(fr_split, a, 64, cache_dir=tmp_path), featurize(fr_split, a, 64, use_cache=False))
    short = featurize(fr_split.head(10), a, 64, use_cache=False)        # entries with the wrong row count
    short.save(path)
    assert len(featurize(fr_split, a, 64, cache_dir=tmp_path)) == len(fr_split)
    longer = load_split("xnli", "validation", "fr", data_dir=shared_data).head(len(fr_split) + 50)
    featurize(longer, a, 64, use_cache=False).save(path)
    assert same_features(featurize(fr_split, a, 64, cache_dir=tmp_path), featurize(fr_split, a, 64, use_cache=False))


def test_featurize_is_the_tokenizer_called_on_each_pair(two_tokenizers, fr_split, tmp_path):
    """Ids, token types and labels of every example equal a direct call of the tokenizer on that pair."""
    a, _ = two_tokenizers
    feats = featurize(fr_split, a, 32, use_cache=False)
    frame = fr_split.frame
    enc = a(frame["text_a"].tolist(), frame["text_b"].tolist(), truncation="longest_first", max_length=32)
    for i in range(len(frame)):
        ex = feats.example(i)
        assert ex["input_ids"] == enc["input_ids"][i] and ex["token_type_ids"] == enc["token_type_ids"][i]
        assert ex["label"] == frame["label"][i] and ex["index"] == i
    assert feats.pad_token_id == a.pad_token_id == 0 and max(feats.lengths) == 32


# --------------------------------------------------------------------------------------------------
# Batching


lengths_strategy = st.lists(st.integers(1, 60), min_size=0, max_size=200).map(lambda v: np.array(v, dtype=np.int64))


@PROPERTY
@given(lengths_strategy, st.integers(1, 17))
def test_evaluation_batches_are_longest_first_with_ties_in_source_order(lengths, batch_size):
    """Catches an unstable or ascending sort, a dropped last batch, and oversized batches."""
    got = batch_order(lengths, batch_size, shuffle=False)
    expected = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    assert [int(i) for b in got for i in b] == expected
    assert [len(b) for b in got] == [min(batch_size, len(lengths) - k) for k in range(0, len(lengths), batch_size)]
    feats = Features(np.zeros(len(lengths) + 1, np.int64), {"input_ids": np.zeros(0, np.int32)},
                     {"index": np.arange(len(lengths))}, {"input_ids": 0})
    assert len(got) == num_batches(feats, batch_size) == math.ceil(len(lengths) / batch_size)


@PROPERTY
@given(lengths_strategy, st.integers(1, 9), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_training_batches_cover_every_row_once_and_depend_only_on_the_seed(lengths, batch_size, bucket, seed):
    """Catches a row dropped or repeated in an epoch, batches over the size, an order that ignores the seed,
    and buckets that mix rows from different chunks of the shuffle (which would undo the randomness)."""
    got = batch_order(lengths, batch_size, shuffle=True, seed=seed, bucket_batches=bucket)
    flat = [int(i) for b in got for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(1 <= len(b) <= batch_size for b in got)
    again = batch_order(lengths, batch_size, shuffle=True, seed=seed, bucket_batches=bucket)
    assert [b.tolist() for b in got] == [b.tolist() for b in again]
    # within a batch, lengths are the sorted (longest first) run of one chunk of the seeded shuffle
    chunk = batch_size * bucket
    perm = np.random.default_rng(seed).permutation(len(lengths))
    chunk_of = {int(r): i // chunk for i, r in enumerate(perm)}
    for b in got:
        assert len({chunk_of[int(r)] for r in b}) == 1
        assert list(lengths[b]) == sorted(lengths[b], reverse=True)
    # at most one short batch per chunk
    short = [chunk_of[int(b[0])] for b in got if len(b) < batch_size]
    assert len(short) == len(set(short))


def test_different_seeds_give_different_orders_and_bucketing_reduces_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 120, 2000)
    one = batch_order(lengths, 16, shuffle=True, seed=1)
    two = batch_order(lengths, 16, shuffle=True, seed=2)
    assert [b.tolist() for b in one] != [b.tolist() for b in two]
    random_batches = [np.arange(len(lengths))[rng.permutation(len(lengths))][i:i + 16] for i in range(0, 2000, 16)]
    assert padding_efficiency(lengths, one) > padding_efficiency(lengths, random_batches) + 0.15
    three = np.array([10, 30, 20])
    assert padding_efficiency(three, [np.array([0, 1]), np.array([2])]) == pytest.approx(60 / (2 * 30 + 20))
    assert padding_efficiency(three, [np.array([0, 1, 2])], fixed=128) == pytest.approx(60 / 384)
    assert padding_efficiency(three, []) == 1.0


def test_collate_equals_transformers_padding(two_tokenizers, fr_split):
    """A batch equals what the tokenizer's own `pad` makes of the same examples (ids, mask, token types), with
    the labels and split positions of the rows asked for."""
    a, _ = two_tokenizers
    feats = featurize(fr_split, a, 128, use_cache=False)
    by_length = np.argsort(feats.lengths, kind="stable")
    rows = by_length[[150, 0, -1, 40, 7]]                     # widths differ: padding shows
    assert len(set(feats.lengths[rows].tolist())) >= 4
    batch = collate(feats, rows)
    examples = [{k: v for k, v in feats.example(int(r)).items() if k in ("input_ids", "token_type_ids")}
                for r in rows]
    ref = a.pad(examples, padding="longest", return_tensors="pt", return_attention_mask=True)
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert torch.equal(batch[key], ref[key]), key
    assert batch["labels"].tolist() == fr_split.frame["label"][rows].tolist()
    assert batch["index"].tolist() == rows.tolist() and batch["input_ids"].dtype == torch.int64
    picked = feats.select(rows)
    assert all(picked.example(j) == feats.example(int(r)) for j, r in enumerate(rows))
    assert [b["index"].tolist() for b in batches(picked, 2)] == [
        picked.index[r].tolist() for r in batch_order(picked.lengths, 2, shuffle=False)]


@PROPERTY
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=50, unique=True), st.integers(1, 7))
def test_restore_order_undoes_any_batching(positions, batch_size):
    """Predictions gathered batch by batch go back to ascending split position."""
    index = np.array(positions)
    values = index * 3 + 1                                    # a value that names its example
    order = np.random.default_rng(len(positions)).permutation(len(index))
    per_batch_idx = [index[order[i:i + batch_size]] for i in range(0, len(order), batch_size)]
    per_batch_val = [values[order[i:i + batch_size]] for i in range(0, len(order), batch_size)]
    assert restore_order(per_batch_idx, per_batch_val).tolist() == sorted(values.tolist())
    assert restore_order(index[order], values[order]).tolist() == sorted(values.tolist())
    with pytest.raises(ValueError):
        restore_order(index, values[:-1] if len(values) > 1 else np.zeros(2))
    assert len(restore_order([], [])) == 0


# --------------------------------------------------------------------------------------------------
# Named ragged arrays: any type's token and row arrays


@st.composite
def ragged_features(draw):
    lengths = draw(st.lists(st.integers(0, 6), min_size=1, max_size=12))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    total = int(offsets[-1])
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    tokens = {"input_ids": rng.integers(5, 99, total).astype(np.int32),
              "labels": rng.integers(0, 7, total).astype(np.int16), "word": rng.integers(0, 9, total).astype(np.int32)}
    rows = {"index": rng.integers(0, 4, len(lengths)), "start": rng.integers(0, 50, len(lengths))}
    feats = Features(offsets, tokens, rows, {"input_ids": 1, "labels": -100})   # "word": no pad given -> 0
    picked = rng.permutation(len(lengths))[:draw(st.integers(1, len(lengths)))]
    return feats, picked


@PROPERTY
@given(ragged_features())
def test_collate_pads_every_token_array_with_its_own_value_and_passes_row_arrays(case):
    """Whatever arrays a task type puts in its Features: each token array padded to the batch's longest row
    with its pad value (0 when none is given), the mask on the real tokens, row arrays and `row` as they are.
    Catches one pad value used for every array, a mask off by one, or rows gathered from the wrong place."""
    feats, rows = case
    batch = collate(feats, rows)
    seqs = {name: [arr[feats.offsets[r]:feats.offsets[r + 1]].tolist() for r in rows] for name, arr in feats.tokens.items()}
    width = max(len(s) for s in seqs["input_ids"])
    for name, pad in (("input_ids", 1), ("labels", -100), ("word", 0)):
        assert batch[name].tolist() == [s + [pad] * (width - len(s)) for s in seqs[name]], name
        assert batch[name].dtype == torch.int64
    assert batch["attention_mask"].tolist() == [[1] * len(s) + [0] * (width - len(s)) for s in seqs["input_ids"]]
    assert batch["index"].tolist() == feats.rows["index"][rows].tolist()
    assert batch["start"].tolist() == feats.rows["start"][rows].tolist() and batch["row"].tolist() == rows.tolist()
    picked = feats.select(rows)
    assert len(picked) == len(rows) and picked.lengths.tolist() == feats.lengths[rows].tolist()
    for j, r in enumerate(rows):
        assert picked.example(j) == feats.example(int(r))
    assert picked.pad == feats.pad and feats.subset(None) is feats and feats.subset(len(feats)) is feats
    head = feats.subset(1)
    assert len(head) == 1 and head.example(0) == feats.example(0)


def test_cache_key_follows_options_feature_parameters_and_type(two_tokenizers, fr_split, tmp_path):
    """Catches a key that leaves out the task's options (QA's decoding limits live there), a feature parameter
    other than the length (window_step), the task type or the hub revision."""
    import dataclasses

    a, _ = two_tokenizers
    base = cache_path(fr_split, a, {"max_seq_len": 64}, tmp_path)
    assert cache_path(fr_split, a, 64, tmp_path) == base
    assert base.parent == tmp_path / "xnli" and base.name.startswith("validation-fr-64-")
    variants = [cache_path(dataclasses.replace(fr_split, options={"n_best": 5}), a, 64, tmp_path),
                cache_path(fr_split, a, {"max_seq_len": 64, "window_step": 32}, tmp_path),
                cache_path(dataclasses.replace(fr_split, task_type="other-type"), a, 64, tmp_path),
                cache_path(dataclasses.replace(fr_split, revision="abc"), a, 64, tmp_path),
                cache_path(dataclasses.replace(fr_split, lang="de"), a, 64, tmp_path)]
    assert len({base, *variants}) == 6
    with pytest.raises(Exception, match="max_seq_len 7 is too short"):
        featurize(fr_split, a, 7, use_cache=False)
    feats = featurize(fr_split.head(5), a, 64, cache_dir=tmp_path)
    assert feats.meta["examples"] == 5 and feats.meta["max_seq_len"] == 64 and feats.meta["lang"] == "fr"
    assert feats.num_examples == 5
