"""Featurisation: the model's own tokenizer, an on-disk feature cache, length-bucketed dynamic padding.

    feats = featurize(split, tokenizer, max_seq_len=128)          # Features, cached on disk
    for batch in batches(feats, 32, shuffle=True, seed=1): ...    # dict of torch tensors

Features are ragged: all token ids of a split in one flat array plus offsets, so a split of 400k pairs is
a few arrays, not 400k Python lists, and loads from the cache with one `np.load`.

The cache (default ~/.cache/xlt/features, or XLT_CACHE_DIR, or `cache_dir=`) is keyed by the tokenizer's
fingerprint (class, vocabulary / serialized backend, special tokens, and the kwargs that change its output),
the task, split, language, task type, max length and the exact source read (hub revision, or a local file's
path, size and mtime). Files are written to a temp name and renamed, so a reader never sees half a file.

Batches: evaluation sorts by length (longest first, so an out-of-memory shows up at once) and each batch
carries `index` (positions in the split) so predictions go back to source order. Training shuffles, sorts
within chunks of `bucket_batches` batches, cuts batches there and shuffles the batch order: similar lengths
share a batch, but the order stays random and is fixed by the seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from xlt.atomic import atomic_path
from xlt.errors import XltError
from xlt.tasks import SplitData

CACHE_FORMAT = 1
DEFAULT_CACHE_DIR = Path("~/.cache/xlt/features")


def cache_root(cache_dir: str | Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("XLT_CACHE_DIR")
    return Path(env).expanduser() if env else DEFAULT_CACHE_DIR.expanduser()


# --------------------------------------------------------------------------------------------------
# Features


@dataclass(frozen=True)
class Features:
    """Tokenised examples of one split, ragged: example i is input_ids[offsets[i]:offsets[i+1]]."""

    input_ids: np.ndarray            # (total_tokens,) int32
    offsets: np.ndarray              # (n + 1,) int64
    token_type_ids: np.ndarray | None   # (total_tokens,) int8, only if the tokenizer produces them
    labels: np.ndarray               # (n,) int64
    index: np.ndarray                # (n,) int64, position of each example in the split
    pad_token_id: int
    meta: dict = dataclasses.field(default_factory=dict, compare=False)   # task, split, lang, key, ...

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def example(self, i: int) -> dict[str, Any]:
        s, e = int(self.offsets[i]), int(self.offsets[i + 1])
        out = {"input_ids": self.input_ids[s:e].tolist(), "label": int(self.labels[i]), "index": int(self.index[i])}
        if self.token_type_ids is not None:
            out["token_type_ids"] = self.token_type_ids[s:e].tolist()
        return out

    def select(self, rows: np.ndarray | list[int]) -> "Features":
        """The examples at `rows` (in that order); `index` keeps their positions in the split."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        gather = (np.repeat(self.offsets[rows] - offsets[:-1], lengths) + np.arange(offsets[-1])).astype(np.int64)
        return Features(self.input_ids[gather], offsets,
                        None if self.token_type_ids is None else self.token_type_ids[gather],
                        self.labels[rows], self.index[rows], self.pad_token_id, dict(self.meta))

    def subset(self, n: int | None) -> "Features":
        """The first n examples in source order (all if n is None): `max_train_samples`."""
        if n is None or n >= len(self):
            return self
        return self.select(np.arange(n))

    # -- cache file ----------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write atomically: a temp file in the same folder, then rename."""
        arrays = dict(input_ids=self.input_ids, offsets=self.offsets, labels=self.labels, index=self.index,
                      pad_token_id=np.array(self.pad_token_id, dtype=np.int64),
                      meta=np.array(json.dumps(self.meta, sort_keys=True)))
        if self.token_type_ids is not None:
            arrays["token_type_ids"] = self.token_type_ids
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: Path) -> "Features":
        with np.load(path, allow_pickle=False) as z:
            return cls(z["input_ids"], z["offsets"], z["token_type_ids"] if "token_type_ids" in z.files else None,
                       z["labels"], z["index"], int(z["pad_token_id"]), json.loads(str(z["meta"])))


# --------------------------------------------------------------------------------------------------
# Tokenizer fingerprint and cache key

_FINGERPRINTS: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


def _backend_state(backend: Any) -> str:
    """The serialized tokenizers pipeline without `truncation` and `padding`: those are per-call settings the
    last __call__ left behind, not part of the tokenizer. tokenizers writes the top-level keys in a fixed
    order (version, truncation, padding, added_tokens, ...), so cutting at "added_tokens" avoids parsing a
    vocabulary of 250k pieces; any other layout is parsed and cleaned as JSON."""
    text = backend.to_str()
    cut = text.find('"added_tokens":')
    head = text[:cut]
    if cut > 0 and head.count("{") - head.count("}") == 1 and '"truncation":' in head and '"padding":' in head:
        return text[cut:]
    state = json.loads(text)
    state.pop("truncation", None)
    state.pop("padding", None)
    return json.dumps(state, sort_keys=True)


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of everything that decides a tokenizer's output ids (not its name or where it was loaded)."""
    try:
        return _FINGERPRINTS[tokenizer]
    except (KeyError, TypeError):
        pass
    h = hashlib.sha256()
    h.update(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:   # fast tokenizer: vocab, normalizer, pre-tokenizer, post-processor, added tokens
        h.update(_backend_state(backend).encode())
    else:                     # slow tokenizer: the vocabulary files' bytes
        for attr in sorted(getattr(tokenizer, "vocab_files_names", {}) or {}):
            path = getattr(tokenizer, attr, None)
            if isinstance(path, (str, Path)) and Path(path).is_file():
                h.update(Path(path).read_bytes())
        if hasattr(tokenizer, "get_vocab"):
            h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    extra = {
        "special": {k: str(v) for k, v in sorted((getattr(tokenizer, "special_tokens_map", {}) or {}).items())},
        "pad_token_id": getattr(tokenizer, "pad_token_id", None),
        "model_input_names": list(getattr(tokenizer, "model_input_names", []) or []),
        "truncation_side": getattr(tokenizer, "truncation_side", None),
        "do_lower_case": getattr(tokenizer, "do_lower_case", None),
    }
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    fp = h.hexdigest()[:24]
    try:
        _FINGERPRINTS[tokenizer] = fp
    except TypeError:
        pass
    return fp


def cache_path(split: SplitData, tokenizer: Any, max_seq_len: int, cache_dir: str | Path | None = None) -> Path:
    key = json.dumps({"format": CACHE_FORMAT, "tokenizer": tokenizer_fingerprint(tokenizer), "task": split.task,
                      "type": split.task_type, "split": split.split, "lang": split.lang,
                      "max_seq_len": int(max_seq_len), "source": split.source_key, "revision": split.revision},
                     sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return cache_root(cache_dir) / split.task / f"{split.split}-{split.lang}-{max_seq_len}-{digest}.npz"


# --------------------------------------------------------------------------------------------------
# Featurisation per task type


def _featurize_pairs(split: SplitData, tokenizer: Any, max_seq_len: int, chunk: int = 2048) -> Features:
    frame = split.frame
    a, b = frame["text_a"].tolist(), frame["text_b"].tolist()
    ids_parts, tt_parts, lengths = [], [], []
    has_tt = None
    for start in range(0, len(a), chunk):
        enc = tokenizer(a[start:start + chunk], b[start:start + chunk], truncation="longest_first",
                        max_length=max_seq_len, padding=False, return_attention_mask=False)
        ids = enc["input_ids"]
        if has_tt is None:
            has_tt = "token_type_ids" in enc and enc["token_type_ids"] is not None
        chunk_lengths = [len(x) for x in ids]
        lengths.extend(chunk_lengths)
        total = sum(chunk_lengths)
        ids_parts.append(np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32, count=total))
        if has_tt:
            tt_parts.append(np.fromiter(itertools.chain.from_iterable(enc["token_type_ids"]), dtype=np.int8,
                                        count=total))
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.asarray(lengths, dtype=np.int64), out=offsets[1:])
    pad = tokenizer.pad_token_id
    if pad is None:
        raise XltError(f"tokenizer {getattr(tokenizer, 'name_or_path', tokenizer)!r} has no pad token; "
                       "dynamic padding needs one (set tokenizer.pad_token)")
    return Features(
        input_ids=np.concatenate(ids_parts) if ids_parts else np.zeros(0, np.int32), offsets=offsets,
        token_type_ids=(np.concatenate(tt_parts) if tt_parts else np.zeros(0, np.int8)) if has_tt else None,
        labels=frame["label"].to_numpy(dtype=np.int64), index=np.arange(len(frame), dtype=np.int64),
        pad_token_id=int(pad))


FEATURIZERS = {"pair-classification": _featurize_pairs}


def featurize(split: SplitData, tokenizer: Any, max_seq_len: int, cache_dir: str | Path | None = None,
              use_cache: bool = True) -> Features:
    """Tokenise a split with the model's tokenizer, or load the same features from the disk cache."""
    if split.task_type not in FEATURIZERS:
        raise XltError(f"featurisation for task type {split.task_type!r} is not implemented yet; "
                       f"implemented: {', '.join(FEATURIZERS)}")
    if max_seq_len < 8:
        raise XltError(f"max_seq_len {max_seq_len} is too short for a sentence pair; use e.g. 128")
    path = cache_path(split, tokenizer, max_seq_len, cache_dir) if use_cache else None
    if path is not None and path.is_file():
        try:
            feats = Features.load(path)
            if len(feats) == len(split):
                return feats
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is rebuilt below
    feats = FEATURIZERS[split.task_type](split, tokenizer, max_seq_len)
    feats = dataclasses.replace(feats, meta={"task": split.task, "split": split.split, "lang": split.lang,
                                             "origin": split.origin, "revision": split.revision,
                                             "max_seq_len": max_seq_len})
    if path is not None:
        try:
            feats.save(path)
        except OSError:
            pass  # a read-only cache must not stop a run; the next one tokenises again
    return feats


# --------------------------------------------------------------------------------------------------
# Batching


def batch_order(lengths: np.ndarray, batch_size: int, shuffle: bool, seed: int = 0,
                bucket_batches: int = 50) -> list[np.ndarray]:
    """Row indices of each batch. Every row appears in exactly one batch."""
    n = len(lengths)
    if batch_size < 1:
        raise XltError(f"batch size must be positive, got {batch_size}")
    if not shuffle:
        order = np.argsort(-lengths, kind="stable")   # longest first, ties in source order
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    chunk = batch_size * bucket_batches
    out: list[np.ndarray] = []
    for start in range(0, n, chunk):
        rows = perm[start:start + chunk]
        rows = rows[np.argsort(-lengths[rows], kind="stable")]
        out.extend(rows[i:i + batch_size] for i in range(0, len(rows), batch_size))
    return [out[i] for i in rng.permutation(len(out))]


def collate(feats: Features, rows: np.ndarray) -> dict:
    """Pad the examples at `rows` to their longest one with the tokenizer's pad id."""
    import torch

    lengths = feats.lengths[rows]
    width = int(lengths.max()) if len(rows) else 0
    ids = np.full((len(rows), width), feats.pad_token_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    tt = np.zeros((len(rows), width), dtype=np.int64) if feats.token_type_ids is not None else None
    for j, (r, length) in enumerate(zip(rows, lengths)):
        s = feats.offsets[r]
        ids[j, :length] = feats.input_ids[s:s + length]
        mask[j, :length] = 1
        if tt is not None:
            tt[j, :length] = feats.token_type_ids[s:s + length]
    batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask),
             "labels": torch.from_numpy(feats.labels[rows].astype(np.int64)),
             "index": torch.from_numpy(feats.index[rows].astype(np.int64))}
    if tt is not None:
        batch["token_type_ids"] = torch.from_numpy(tt)
    return batch


def batches(feats: Features, batch_size: int, shuffle: bool = False, seed: int = 0,
            bucket_batches: int = 50) -> Iterator[dict]:
    """Length-bucketed, dynamically padded batches (see the module docstring)."""
    for rows in batch_order(feats.lengths, batch_size, shuffle, seed, bucket_batches):
        yield collate(feats, rows)


def num_batches(feats: Features, batch_size: int) -> int:
    return -(-len(feats) // batch_size)


def padding_efficiency(lengths: np.ndarray, groups: list[np.ndarray], fixed: int | None = None) -> float:
    """Real tokens / tokens in the padded batches (fixed: every batch padded to that width)."""
    real = int(lengths.sum())
    padded = sum(len(g) * (fixed if fixed else int(lengths[g].max())) for g in groups if len(g))
    return real / padded if padded else 1.0


def restore_order(index, values) -> np.ndarray:
    """Values gathered batch by batch, put back in source order (ascending `index`).

    `index` and `values` are arrays or lists of per-batch arrays/tensors (e.g. batch["index"] and the
    batch's predictions); the result's i-th entry belongs to the i-th smallest index.
    """
    def flat(x):
        if isinstance(x, (list, tuple)):
            return np.concatenate([np.asarray(v) for v in x]) if len(x) else np.zeros(0)
        return np.asarray(x)

    index, values = flat(index), flat(values)
    if len(index) != len(values):
        raise ValueError(f"{len(index)} indices for {len(values)} values")
    return values[np.argsort(index, kind="stable")]
