"""Featurisation, the feature cache and length-bucketed batches, with the tiny DeBERTa tokenizer."""

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from xlt.data import Features, batch_order, batches, cache_path, padding_efficiency, restore_order
from tests.factories import featurize
from xlt.errors import XltError
from xlt.tasks import load_split


class CountingTokenizer:
    """Delegates to a real tokenizer and counts how often it is asked to tokenise."""

    def __init__(self, tok):
        self._tok = tok
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self._tok(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._tok, name)


@pytest.fixture(scope="module")
def tokenizer(tiny_deberta_v3):
    return AutoTokenizer.from_pretrained(tiny_deberta_v3)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One feature cache for the tests that do not test caching itself (tokenise fr once)."""
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="module")
def fr_split(shared_data):
    return load_split("xnli", "validation", "fr", data_dir=shared_data)


def test_featurize_matches_tokenizer(tokenizer, fr_split, tmp_path):
    feats = featurize(fr_split, tokenizer, 64, cache_dir=tmp_path)
    assert len(feats) == 2490 and int(feats.lengths.max()) <= 64
    row = fr_split.frame.iloc[7]
    expected = tokenizer(row["text_a"], row["text_b"], truncation="longest_first", max_length=64)
    ex = feats.example(7)
    assert ex["input_ids"] == expected["input_ids"] and ex["label"] == int(row["label"]) and ex["index"] == 7
    assert ex["token_type_ids"] == expected["token_type_ids"]    # this tokenizer produces them
    assert feats.pad_token_id == tokenizer.pad_token_id


def test_cache_hit_second_time_does_not_tokenise(tokenizer, fr_split, tmp_path):
    first = CountingTokenizer(tokenizer)
    a = featurize(fr_split, first, 128, cache_dir=tmp_path)
    assert first.calls > 0 and cache_path(fr_split, first, 128, tmp_path).is_file()
    second = CountingTokenizer(tokenizer)
    b = featurize(fr_split, second, 128, cache_dir=tmp_path)
    assert second.calls == 0
    assert np.array_equal(a.input_ids, b.input_ids) and np.array_equal(a.offsets, b.offsets)
    assert np.array_equal(a.token_type_ids, b.token_type_ids) and np.array_equal(a.labels, b.labels)
    # a different max length, language or source file is a different cache entry
    third = CountingTokenizer(tokenizer)
    featurize(fr_split, third, 96, cache_dir=tmp_path)
    assert third.calls > 0
    assert cache_path(fr_split.head(100), tokenizer, 128, tmp_path) != cache_path(fr_split, tokenizer, 128, tmp_path)
    # no temp files left behind by the atomic writes
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_cache_dir_from_env(tokenizer, fr_split, tmp_path, monkeypatch):
    monkeypatch.setenv("XLT_CACHE_DIR", str(tmp_path / "env-cache"))
    featurize(fr_split.head(50), tokenizer, 32)
    assert list((tmp_path / "env-cache").rglob("*.npz"))


def test_token_type_ids_only_when_produced(tiny_xlmr, fr_split, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_xlmr)
    feats = featurize(fr_split.head(64), tok, 64, cache_dir=tmp_path)
    has_tt = "token_type_ids" in tok("a", "b")
    assert (feats.token_type_ids is not None) == has_tt
    batch = next(batches(feats, 16))
    assert ("token_type_ids" in batch) == has_tt
    pad = batch["attention_mask"] == 0
    assert torch.all(batch["input_ids"][pad] == tok.pad_token_id) and tok.pad_token_id == 1


def test_train_batches_cover_every_example_once_and_are_deterministic(tokenizer, fr_split, shared_cache, tmp_path):
    feats = featurize(fr_split, tokenizer, 128, cache_dir=shared_cache)
    seen = []
    for batch in batches(feats, 32, shuffle=True, seed=3):
        n, width = batch["input_ids"].shape
        assert n <= 32 and width == int(batch["attention_mask"].sum(1).max())     # dynamic padding
        assert torch.all(batch["input_ids"][batch["attention_mask"] == 0] == tokenizer.pad_token_id)
        lengths = batch["attention_mask"].sum(1).numpy()
        assert np.array_equal(lengths, feats.lengths[batch["index"].numpy()])
        assert np.array_equal(batch["labels"].numpy(), feats.labels[batch["index"].numpy()])
        seen.extend(batch["index"].tolist())
    assert sorted(seen) == list(range(len(feats)))
    again = [b["index"].tolist() for b in batches(feats, 32, shuffle=True, seed=3)]
    other = [b["index"].tolist() for b in batches(feats, 32, shuffle=True, seed=4)]
    assert [i for b in again for i in b] == seen and [i for b in other for i in b] != seen
    # shuffled, yet bucketed: padding stays small
    groups = batch_order(feats.lengths, 32, shuffle=True, seed=3)
    assert padding_efficiency(feats.lengths, groups) > 0.9


def test_eval_batches_sorted_and_order_restored(tokenizer, fr_split, shared_cache, tmp_path):
    feats = featurize(fr_split, tokenizer, 128, cache_dir=shared_cache)
    idx, widths, preds = [], [], []
    for batch in batches(feats, 50):
        idx.append(batch["index"])
        widths.append(batch["input_ids"].shape[1])
        preds.append(batch["labels"] * 10 + 1)           # a stand-in prediction per example
    assert widths == sorted(widths, reverse=True)        # longest first
    restored = restore_order(idx, preds)
    assert np.array_equal(restored, fr_split.frame["label"].to_numpy() * 10 + 1)
    assert sorted(torch.cat(idx).tolist()) == list(range(len(feats)))


def test_subset_and_select(tokenizer, fr_split, shared_cache, tmp_path):
    feats = featurize(fr_split, tokenizer, 128, cache_dir=shared_cache)
    sub = feats.subset(100)
    assert len(sub) == 100 and sub.example(99) == feats.example(99)
    assert feats.subset(None) is feats and len(feats.subset(10**6)) == len(feats)
    picked = feats.select([5, 2, 900])
    assert [picked.example(i) for i in range(3)] == [feats.example(5), feats.example(2), feats.example(900)]
    assert len(fr_split.head(10)) == 10 and len(featurize(fr_split.head(10), tokenizer, 128, cache_dir=tmp_path)) == 10


def test_features_round_trip(tokenizer, fr_split, tmp_path):
    feats = featurize(fr_split.head(20), tokenizer, 64, use_cache=False)
    feats.save(tmp_path / "f.npz")
    back = Features.load(tmp_path / "f.npz")
    assert all(back.example(i) == feats.example(i) for i in range(20))


def test_bad_arguments(tokenizer, fr_split, tmp_path):
    with pytest.raises(XltError, match="max_seq_len"):
        featurize(fr_split, tokenizer, 2, cache_dir=tmp_path)
    with pytest.raises(XltError, match="batch size"):
        batch_order(np.array([3, 4]), 0, shuffle=False)


def test_fingerprint_ignores_call_settings_but_not_the_vocabulary(tiny_deberta_v3, tiny_xlmr):
    from xlt.data import _FINGERPRINTS, tokenizer_fingerprint

    tok = AutoTokenizer.from_pretrained(tiny_deberta_v3)
    before = tokenizer_fingerprint(tok)
    tok("a b c", "d e", truncation="longest_first", max_length=5, padding="max_length")
    _FINGERPRINTS.clear()
    assert tokenizer_fingerprint(tok) == before
    assert tokenizer_fingerprint(AutoTokenizer.from_pretrained(tiny_deberta_v3)) == before
    assert tokenizer_fingerprint(AutoTokenizer.from_pretrained(tiny_xlmr)) != before
