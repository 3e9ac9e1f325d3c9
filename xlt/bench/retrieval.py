"""`xlt bench retrieval`: embedding and search throughput of the retrieval type, against a plain loop.

Embedding, on every sentence of both sides of a retrieval task's languages (Tatoeba: the local LASER files):

- xlt: the run's own path. The task type's features, the model with the `encoder` head (the native DeBERTa
  stops at the chosen layer; other models go through transformers' AutoModel), `xlt.evaluate.predict` over
  length-bucketed batches (longest first, each padded to its longest) and the type's pooling.
- plain: what a script such as XTREME's evaluate_retrieval.py does with transformers: `AutoModel`,
  sentences in file order, batches of the same size padded to their longest (`padding=True`),
  `output_hidden_states=True`, hidden_states[layer] mean-pooled over the attention mask.

Both use the same checkpoint, layer, maximum length, batch size, precision (autocast as `xlt run` resolves it)
and thread count, in the same process; each runs `repeats` times, alternating which goes first, and the median
is reported. Tokenisation is timed apart from the model (xlt: featurize without the cache; plain: the
tokenizer calls of its loop). The embeddings of the two are compared (max abs difference per language), so a
speed-up never comes from computing something else.

Search: Tatoeba's top-1 search (both directions) and BUCC's mining on the embeddings just made, per language;
and, with `search_size`, one exact k=4 search in both directions over n x n random embeddings of the model's
width (`xlt.tasktypes.retrieval_search.knn_both`), the cost BUCC's ~400k-sentence corpora scale up from
(`xlt bench search` measures the one-direction search at that scale with its peak memory).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from xlt.bench.search import cpu_model


def _plain_embed(model, tokenizer, texts: list[str], layer: int, batch_size: int, max_len: int, device) -> tuple:
    """A transformers AutoModel, batches in file order padded to their longest, mean over the attention mask."""
    out, tok_s, model_s, tokens, padded = [], 0.0, 0.0, 0, 0
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            t0 = time.perf_counter()
            enc = tokenizer([t.strip() for t in texts[start:start + batch_size]], padding=True, truncation=True,
                            max_length=max_len, return_tensors="pt")
            t1 = time.perf_counter()
            with device.autocast():
                hidden = model(**enc.to(device.torch_device), output_hidden_states=True).hidden_states[layer]
            mask = enc["attention_mask"].unsqueeze(-1).float()
            out.append(((hidden.float() * mask).sum(1) / mask.sum(1)).cpu().numpy())
            tok_s, model_s = tok_s + t1 - t0, model_s + time.perf_counter() - t1
            tokens, padded = tokens + int(enc["attention_mask"].sum()), padded + enc["attention_mask"].numel()
    return np.concatenate(out), tok_s, model_s, tokens, padded


def bench_retrieval(model: str, task: str = "tatoeba", data_dir: str | Path | None = None,
                    languages: list[str] | None = None, batch_size: int = 64, precision: str = "fp32",
                    repeats: int = 3, search_size: int = 0, tasks_dir: str | Path | None = None,
                    say: Callable[[str], None] | None = None) -> dict[str, Any]:
    from transformers import AutoModel

    from xlt import data as xdata
    from xlt.device import Device
    from xlt.evaluate import predict
    from xlt.models import load_model, resolve_model
    from xlt.recipes import build_spec
    from xlt.tasks import get_task, load_split
    from xlt.tasks.sources import available_splits
    from xlt.tasktypes import retrieval_rows as R
    from xlt.tasktypes import retrieval_search as S

    say = say or (lambda message: None)
    spec_task = get_task(task, tasks_dir)
    split_name = spec_task.eval_splits[0]
    langs = list(languages or available_splits(spec_task, data_dir, [split_name])[split_name])
    spec = build_spec(model, spec_task, data_dir=data_dir, languages=langs, precision=precision)
    hp, tt = spec.hparams, spec_task.task_type
    device = Device.resolve("cpu", precision)
    loaded = load_model(model, "encoder", None, impl=spec.impl, output_layer=hp.layer)
    plain = AutoModel.from_pretrained(resolve_model(model).hub_id, dtype=torch.float32,
                                      trust_remote_code=False).eval()   # never run code from a checkpoint
    splits = [load_split(spec_task, split_name, lang, data_dir) for lang in langs]
    params = {"max_seq_len": hp.max_seq_len, "pooling": "mean"}
    rows: dict[str, list] = {"xlt": [], "plain": []}
    result: dict[str, Any] = {}
    for rep in range(repeats):
        for pipeline in (("xlt", "plain") if rep % 2 == 0 else ("plain", "xlt")):
            say(f"repeat {rep + 1}/{repeats}: {pipeline}")
            tok_s = model_s = 0.0
            tokens = padded = 0
            embeddings = {}
            for split in splits:
                sides = R.sides(split.frame)
                if pipeline == "xlt":
                    t0 = time.perf_counter()
                    feats = xdata.featurize(split, loaded.tokenizer, params, task_type=tt, use_cache=False)
                    t1 = time.perf_counter()
                    decoded = predict(loaded.model, feats, task_type=tt, batch_size=batch_size, device=device)
                    model_s += time.perf_counter() - t1
                    tok_s += t1 - t0
                    emb = np.concatenate(R.side_embeddings(feats, decoded))
                    groups = xdata.batch_order(feats.lengths, batch_size, shuffle=False)
                    tokens += int(feats.lengths.sum())
                    padded += sum(len(g) * int(feats.lengths[g].max()) for g in groups)
                else:
                    emb, t, m, n, p = _plain_embed(plain, loaded.tokenizer, sides.sentences + sides.pivots, hp.layer,
                                                   batch_size, hp.max_seq_len, device)
                    tok_s, model_s, tokens, padded = tok_s + t, model_s + m, tokens + n, padded + p
                embeddings[split.lang] = emb
            rows[pipeline].append({"tokenise_s": tok_s, "embed_s": model_s, "tokens": tokens, "padded": padded})
            result[f"{pipeline}_embeddings"] = embeddings
    sentences = sum(len(e) for e in result["xlt_embeddings"].values())
    summary = {}
    for pipeline, runs in rows.items():
        embed_s = statistics.median(r["embed_s"] for r in runs)
        summary[pipeline] = {"embed_s": embed_s, "tokenise_s": statistics.median(r["tokenise_s"] for r in runs),
                             "sentences_per_s": sentences / embed_s, "tokens_per_s": runs[0]["tokens"] / embed_s,
                             "padding_efficiency": runs[0]["tokens"] / runs[0]["padded"], "runs": runs}
    differences = {lang: float(np.abs(result["xlt_embeddings"][lang] - result["plain_embeddings"][lang]).max())
                   for lang in result["xlt_embeddings"]}
    search = []
    for split in splits:
        sides = R.sides(split.frame)
        emb = result["xlt_embeddings"][split.lang]
        s_emb, p_emb = emb[:len(sides.sentences)], emb[len(sides.sentences):]
        t0 = time.perf_counter()
        S.top1(s_emb, p_emb), S.top1(p_emb, s_emb)
        t1 = time.perf_counter()
        S.mine(s_emb, p_emb)
        search.append({"lang": split.lang, "sentences": len(s_emb), "pivots": len(p_emb),
                       "top1_both_s": t1 - t0, "mine_s": time.perf_counter() - t1})
    scaled = None
    if search_size:
        say(f"search: {search_size:,} x {search_size:,} random embeddings of width {emb.shape[1]}, k=4 both ways")
        gen = torch.Generator().manual_seed(0)
        x, y = (torch.randn(search_size, emb.shape[1], generator=gen) for _ in range(2))
        t0 = time.perf_counter()
        S.knn_both(x, y, S.NEIGHBOURHOOD, S.NEIGHBOURHOOD)
        seconds = time.perf_counter() - t0
        scaled = {"n": search_size, "dim": int(emb.shape[1]), "seconds": seconds,
                  "queries_per_s": 2 * search_size / seconds}
    return {"model": model, "task": spec_task.name, "split": split_name, "languages": langs, "layer": hp.layer,
            "max_seq_len": hp.max_seq_len, "batch_size": batch_size, "precision": device.precision,
            "impl": loaded.impl, "threads": torch.get_num_threads(), "cpu": cpu_model(), "torch": torch.__version__,
            "sentences": sentences, "repeats": repeats, "pipelines": summary,
            "speedup": summary["plain"]["embed_s"] / summary["xlt"]["embed_s"], "max_abs_difference": differences,
            "search": search, "scaled_search": scaled}
