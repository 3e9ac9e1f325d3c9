"""Features: tokenised model rows as named ragged arrays, an on-disk cache, length-bucketed dynamic padding.

    feats = featurize(split, tokenizer, {"max_seq_len": 128})      # Features, cached on disk
    for batch in batches(feats, 32, shuffle=True, seed=1): ...    # dict of torch tensors

A task type turns a split into model rows (xlt.tasktypes): one row per sentence pair, or several overlapping
windows per long sentence or QA context. Features hold them type-agnostically: every per-token array
(input_ids, token_type_ids, a tagger's labels, a QA window's character offsets) in one flat array cut by
`offsets`, and every per-row array (index = the example the row comes from, a pair's label, a QA window's
answer positions) in `rows`. A split of 400k pairs is a few arrays, not 400k Python lists, and loads from the
cache with one `np.load`.

The cache (default ~/.cache/xlt/features, or XLT_CACHE_DIR, or `cache_dir=`) is keyed by the tokenizer's
fingerprint (class, vocabulary / serialized backend, special tokens, and the kwargs that change its output),
the task, split, language, task type, the feature parameters (max length, document stride, ...) and the exact
source read (hub revision, or a local file's path, size and mtime). Files are written to a temp name and
renamed, so a reader never sees half a file.

Batches: evaluation sorts by length (longest first, so an out-of-memory shows up at once) and each batch
carries `row` (positions in the Features) and `index` (the example) so outputs go back to source order.
Training shuffles, sorts within chunks of `bucket_batches` batches, cuts batches there and shuffles the batch
order: similar lengths share a batch, but the order stays random and is fixed by the seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from xlt.atomic import atomic_path
from xlt.errors import XltError

CACHE_FORMAT = 2
DEFAULT_CACHE_DIR = Path("~/.cache/xlt/features")
MODEL_INPUTS = ("input_ids", "token_type_ids")


def cache_root(cache_dir: str | Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("XLT_CACHE_DIR")
    return Path(env).expanduser() if env else DEFAULT_CACHE_DIR.expanduser()


# --------------------------------------------------------------------------------------------------
# Rows of one split


@dataclass(frozen=True)
class SplitData:
    """One split of one language, in the task type's row schema (its `columns`), rows in source order."""

    task: str
    task_type: str
    split: str
    lang: str
    frame: Any = field(repr=False)      # pandas.DataFrame
    origin: str                          # "hub:<id>@<revision>[/<config>/<split>]" or the local file path
    revision: str | None                 # pinned hub revision, None for local files
    label_names: tuple[str, ...]
    source_key: str = field(repr=False, default="")   # identifies the exact bytes read (for feature caching)
    dropped: int = 0                     # rows removed while reading (e.g. PAWS-X's -1 labels)
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)   # the task's `options:`

    def __len__(self) -> int:
        return len(self.frame)

    def head(self, n: int | None) -> "SplitData":
        """The first n rows (all if n is None): for `max_train_samples`-style limits."""
        if n is None or n >= len(self.frame):
            return self
        return dataclasses.replace(self, frame=self.frame.iloc[:n].reset_index(drop=True),
                                   source_key=f"{self.source_key}|head={n}")



# --------------------------------------------------------------------------------------------------
# Features


@dataclass(frozen=True)
class Features:
    """Model rows of one split, ragged: row i's tokens are tokens[name][offsets[i]:offsets[i+1]]."""

    offsets: np.ndarray                              # (rows + 1,) int64
    tokens: dict[str, np.ndarray]                    # per token, (total_tokens,): input_ids, token_type_ids, ...
    rows: dict[str, np.ndarray]                      # per row, (rows,): index (the example it comes from), ...
    pad: dict[str, int]                              # the pad value of each token array
    meta: dict = field(default_factory=dict, compare=False)   # task, split, lang, examples, ...

    def __post_init__(self) -> None:
        if "input_ids" not in self.tokens or "index" not in self.rows:
            raise ValueError("Features need tokens['input_ids'] and rows['index']")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def input_ids(self) -> np.ndarray:
        return self.tokens["input_ids"]

    @property
    def token_type_ids(self) -> np.ndarray | None:
        return self.tokens.get("token_type_ids")

    @property
    def index(self) -> np.ndarray:
        return self.rows["index"]

    @property
    def labels(self) -> np.ndarray | None:
        """Per-row labels (sentence-level tasks), None when the type has none."""
        return self.rows.get("labels")

    @property
    def pad_token_id(self) -> int:
        return self.pad["input_ids"]

    @property
    def num_examples(self) -> int:
        """Examples of the split these rows come from (rows may be windows of fewer examples)."""
        return int(self.meta.get("examples", len(np.unique(self.index)) if len(self) else 0))

    def example(self, i: int) -> dict[str, Any]:
        s, e = int(self.offsets[i]), int(self.offsets[i + 1])
        out: dict[str, Any] = {name: arr[s:e].tolist() for name, arr in self.tokens.items()}
        out.update({name: arr[i].item() for name, arr in self.rows.items()})
        if "labels" in self.rows:
            out["label"] = out["labels"]
        return out

    def select(self, rows: np.ndarray | list[int]) -> "Features":
        """The rows at `rows` (in that order); `index` keeps the examples they come from."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        gather = (np.repeat(self.offsets[rows] - offsets[:-1], lengths) + np.arange(offsets[-1])).astype(np.int64)
        return Features(offsets, {k: v[gather] for k, v in self.tokens.items()},
                        {k: v[rows] for k, v in self.rows.items()}, dict(self.pad), dict(self.meta))

    def subset(self, n: int | None) -> "Features":
        """The first n rows in source order (all if n is None)."""
        if n is None or n >= len(self):
            return self
        return self.select(np.arange(n))

    # -- cache file ----------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write atomically: a temp file in the same folder, then rename."""
        arrays = {"offsets": self.offsets, "pad": np.array(json.dumps(self.pad, sort_keys=True)),
                  "meta": np.array(json.dumps(self.meta, sort_keys=True, default=str))}
        arrays.update({f"tok.{k}": v for k, v in self.tokens.items()})
        arrays.update({f"row.{k}": v for k, v in self.rows.items()})
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: Path) -> "Features":
        with np.load(path, allow_pickle=False) as z:
            tokens = {k[4:]: z[k] for k in z.files if k.startswith("tok.")}
            rows = {k[4:]: z[k] for k in z.files if k.startswith("row.")}
            return cls(z["offsets"], tokens, rows, json.loads(str(z["pad"])), json.loads(str(z["meta"])))


def ragged(sequences, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(flat values, offsets) of a list of sequences: the layout of every Features token array."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter((v for s in sequences for v in s), dtype=dtype, count=int(offsets[-1]))
    return flat, offsets


def pad_id(tokenizer: Any) -> int:
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        raise XltError(f"tokenizer {getattr(tokenizer, 'name_or_path', tokenizer)!r} has no pad token; "
                       "dynamic padding needs one (set tokenizer.pad_token)")
    return int(pad)


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


def feature_params(params: int | Mapping[str, Any]) -> dict[str, Any]:
    """{"max_seq_len": n, ...}; a bare int is a max length (the sentence-pair tasks' only parameter)."""
    return {"max_seq_len": int(params)} if isinstance(params, (int, np.integer)) else dict(params)


def cache_path(split: SplitData, tokenizer: Any, params: int | Mapping[str, Any],
               cache_dir: str | Path | None = None) -> Path:
    params = feature_params(params)
    key = json.dumps({"format": CACHE_FORMAT, "tokenizer": tokenizer_fingerprint(tokenizer), "task": split.task,
                      "type": split.task_type, "split": split.split, "lang": split.lang, "params": params,
                      "options": dict(split.options), "source": split.source_key, "revision": split.revision},
                     sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return cache_root(cache_dir) / split.task / f"{split.split}-{split.lang}-{params.get('max_seq_len')}-{digest}.npz"


def featurize(split: SplitData, tokenizer: Any, params: int | Mapping[str, Any], *, task_type: Any,
              cache_dir: str | Path | None = None, use_cache: bool = True) -> Features:
    """Tokenise a split with the model's tokenizer through `task_type` (the split's type, an
    `xlt.tasktypes.TaskType`), or load the same features from the disk cache. `params`: the type's feature
    parameters, or a max length."""
    if task_type.name != split.task_type:
        raise XltError(f"split {split.task} {split.split}-{split.lang} is of type {split.task_type}, not "
                       f"{task_type.name}")
    params = feature_params(params)
    if params.get("max_seq_len", 0) < 8:
        raise XltError(f"max_seq_len {params.get('max_seq_len')} is too short; use e.g. 128")
    path = cache_path(split, tokenizer, params, cache_dir) if use_cache else None
    if path is not None and path.is_file():
        try:
            feats = Features.load(path)
            if feats.meta.get("examples") == len(split):
                return feats
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is rebuilt below
    feats = task_type.featurize(split, tokenizer, params)
    # the type's own meta (e.g. decoding limits from the task's options) is kept beside the split's
    feats = dataclasses.replace(feats, meta={**feats.meta, "task": split.task, "split": split.split,
                                             "lang": split.lang, "origin": split.origin, "revision": split.revision,
                                             "examples": len(split), **params})
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
    """Pad the rows at `rows` to their longest one: every token array with its pad value, an attention mask,
    every row array as it is, and `row` (the rows themselves)."""
    import torch

    rows = np.asarray(rows, dtype=np.int64)
    lengths = feats.lengths[rows]
    width = int(lengths.max()) if len(rows) else 0
    pos = feats.offsets[rows][:, None] + np.arange(width)[None, :]           # (B, W) flat positions
    mask = np.arange(width)[None, :] < lengths[:, None]
    pos = np.where(mask, pos, 0)
    batch = {"attention_mask": torch.from_numpy(mask.astype(np.int64))}
    for name, values in feats.tokens.items():
        padded = np.where(mask, values[pos] if len(values) else 0, feats.pad.get(name, 0)).astype(np.int64)
        batch[name] = torch.from_numpy(padded)
    for name, values in feats.rows.items():
        batch[name] = torch.from_numpy(np.ascontiguousarray(values[rows]).astype(np.int64))
    batch["row"] = torch.from_numpy(rows)
    return batch


def batches(feats: Features, batch_size: int, shuffle: bool = False, seed: int = 0, bucket_batches: int = 50,
            collate_fn: Callable[[Features, np.ndarray], dict] | None = None) -> Iterator[dict]:
    """Length-bucketed, dynamically padded batches (see the module docstring)."""
    make = collate_fn or collate
    for rows in batch_order(feats.lengths, batch_size, shuffle, seed, bucket_batches):
        yield make(feats, rows)


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
