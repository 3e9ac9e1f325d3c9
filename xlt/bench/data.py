"""`xlt bench data`: tokenisation throughput (cold and cached) and padding efficiency of batches.

Over every language of a task's dev split (XNLI: 15 languages x 2,490 validation pairs):

- cold: featurize into an empty cache (tokenise every pair, write the cache files);
- cached: featurize again from that cache in the same process, with the tokenizer fingerprint memo cleared
  so each pass pays what a new process pays (fingerprint + np.load); median of `repeats` passes;
- tokenise: the task type's featurisation alone (no cache read or written, no fingerprint), median of `repeats`
  passes, also per example (for QA: per question, with every context tokenised once);
- padding efficiency = real tokens / tokens in the padded batches, per language, summed: the training
  batches (shuffled, length-bucketed), the evaluation batches (sorted), random batches with dynamic padding
  and fixed padding to 128 (the `run_xnli.py` default).

Reading the split files is timed separately (`read_s`) and is in neither throughput.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from xlt.errors import XltError

DEFAULT_TOKENIZER = "mdeberta-v3-base"


def load_bench_tokenizer(name_or_path: str):
    """A local tokenizer directory, a registry name or a hub id -> a transformers tokenizer."""
    from transformers import AutoTokenizer

    path = Path(name_or_path).expanduser()
    source = str(name_or_path)
    if path.is_dir():
        source = str(path)
    else:
        from xlt.models.registry import REGISTRY

        if source in REGISTRY:
            source = REGISTRY[source].hub_id
    try:
        return AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    except Exception as exc:  # offline, unknown id, missing files: one message
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise XltError(f"could not load the tokenizer {name_or_path!r} ({source}): {first}. Without network, pass "
                       "--tokenizer DIR with a local tokenizer folder (e.g. a downloaded checkpoint)") from None


def run_data_bench(task: str = "xnli", data_dir: str | Path | None = None, tokenizer: Any = DEFAULT_TOKENIZER,
                   batch_size: int = 32, max_seq_len: int | None = None, split: str | None = None, repeats: int = 3,
                   seed: int = 0, tasks_dir: str | Path | None = None,
                   languages: list[str] | None = None) -> dict[str, Any]:
    """Measure featurisation and batching for every language of `split` (default: the dev split)."""
    import torch

    from xlt import data as xdata
    from xlt.tasks import get_task, load_split

    spec = get_task(task, tasks_dir)
    split = split or spec.dev_split
    tok_name = tokenizer if isinstance(tokenizer, (str, Path)) else getattr(tokenizer, "name_or_path", "?")
    tok = load_bench_tokenizer(str(tokenizer)) if isinstance(tokenizer, (str, Path)) else tokenizer

    from xlt.recipes import effective_hparams

    hp, _ = effective_hparams("", spec, {"max_seq_len": max_seq_len} if max_seq_len else {})
    max_seq_len = hp.max_seq_len
    ttype = spec.task_type
    params = {key: getattr(hp, key) for key in ttype.feature_keys}
    t0 = time.perf_counter()
    langs = list(languages or spec.languages)
    splits = [load_split(spec, split, lang, data_dir) for lang in langs]
    read_s = time.perf_counter() - t0
    pairs = sum(len(s) for s in splits)

    with tempfile.TemporaryDirectory(prefix="xlt-bench-data-") as cache:
        xdata._FINGERPRINTS.clear()
        t0 = time.perf_counter()
        feats = [xdata.featurize(s, tok, params, task_type=ttype, cache_dir=cache) for s in splits]
        cold_s = time.perf_counter() - t0
        cached_times = []
        for _ in range(max(1, repeats)):
            xdata._FINGERPRINTS.clear()
            t0 = time.perf_counter()
            again = [xdata.featurize(s, tok, params, task_type=ttype, cache_dir=cache) for s in splits]
            cached_times.append(time.perf_counter() - t0)
        assert all(np.array_equal(a.input_ids, b.input_ids) for a, b in zip(feats, again))
    cached_s = statistics.median(cached_times)
    tokenise_times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        for s in splits:
            xdata.featurize(s, tok, params, task_type=ttype, use_cache=False)
        tokenise_times.append(time.perf_counter() - t0)
    tokenise_s = statistics.median(tokenise_times)

    real, padded = 0, {"bucketed": 0, "sorted": 0, "random": 0, "fixed": 0}
    rng = np.random.default_rng(seed)
    for f in feats:
        lengths = f.lengths
        real += int(lengths.sum())
        groups = {
            "bucketed": xdata.batch_order(lengths, batch_size, shuffle=True, seed=seed),
            "sorted": xdata.batch_order(lengths, batch_size, shuffle=False),
        }
        perm = rng.permutation(len(lengths))
        groups["random"] = [perm[i:i + batch_size] for i in range(0, len(perm), batch_size)]
        for kind, g in groups.items():
            padded[kind] += sum(len(x) * int(lengths[x].max()) for x in g)
        padded["fixed"] += len(lengths) * max_seq_len   # every batch padded to max_seq_len
    n_tokens = real
    rows = sum(len(f) for f in feats)
    return {
        "task": spec.name, "split": split, "languages": langs, "tokenizer": str(tok_name),
        "tokenizer_class": type(tok).__name__, "batch_size": batch_size, "max_seq_len": max_seq_len,
        "unit": spec.task_type.example_unit, "params": params, "examples": pairs, "rows": rows,
        "rows_per_example": rows / pairs, "max_rows_per_example": max(
            int(np.bincount(f.index).max()) if len(f) else 0 for f in feats),
        "pairs": pairs, "tokens": n_tokens, "mean_tokens_per_pair": n_tokens / pairs,
        "pairs_at_max_len": int(sum((f.lengths >= max_seq_len).sum() for f in feats)),
        "read_s": read_s, "cold_s": cold_s, "cached_s": cached_s, "cached_s_all": cached_times,
        "cold_pairs_per_s": pairs / cold_s, "cached_pairs_per_s": pairs / cached_s,
        "cached_speedup": cold_s / cached_s,
        "tokenise_s": tokenise_s, "tokenise_s_all": tokenise_times, "tokenise_us_per_example": tokenise_s / pairs * 1e6,
        "padding_efficiency_bucketed": real / padded["bucketed"],
        "padding_efficiency_sorted": real / padded["sorted"],
        "padding_efficiency_random": real / padded["random"],
        "padding_efficiency_fixed": real / padded["fixed"],
        "padding_efficiency_fixed128": real / padded["fixed"] if max_seq_len == 128 else None,
        "torch_threads": torch.get_num_threads(),
        "targets": {"padding_efficiency_bucketed>=0.90": real / padded["bucketed"] >= 0.90,
                    "cached_speedup>=10": cold_s / cached_s >= 10},
    }
