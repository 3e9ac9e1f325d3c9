"""xlt's own path in `xlt bench run`, the same for every task type: what `xlt run` does between reading the
data and writing the record. Featurise through the task type (no feature cache, as on a first run), keep the
first steps x batch model rows for training, `xlt.train.fit` with no dev evaluation, then `evaluate_splits`
over every language (length-bucketed batches, the type's decoding and metrics).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xlt.errors import XltError


def _padding(real: int, padded: int) -> float:
    return 1.0 - real / padded if padded else 0.0


class XltPipeline:
    name = "xlt"

    def __init__(self, ckpt: str, rows: dict, hp: dict, precision: str, threads: int, seed: int,
                 keep_dir: str | None = None):
        import torch

        from xlt.device import Device
        from xlt.models import load_model
        from xlt.spec import Hyperparams
        from xlt.tasktypes import get_task_type

        torch.set_num_threads(threads)
        self.rows, self.precision, self.seed, self.steps = rows, precision, seed, hp["_steps"]
        self.hp = Hyperparams(**{k: v for k, v in hp.items() if not k.startswith("_")})
        self.tt = get_task_type(rows["type"])
        self.device = Device.of("cpu", precision)
        self.loaded = load_model(ckpt, self.tt.head, rows["num_outputs"],
                                 gradient_checkpointing=self.hp.gradient_checkpointing, **rows.get("head_options", {}))
        self.params = {key: getattr(self.hp, key) for key in self.tt.feature_keys}

    def tokenise(self) -> dict:
        from xlt import data as xdata

        tok = self.loaded.tokenizer
        train = xdata.featurize(self.rows["train"], tok, self.params, task_type=self.tt, use_cache=False)
        self.eval_feats = {lang: xdata.featurize(s, tok, self.params, task_type=self.tt, use_cache=False)
                           for lang, s in self.rows["eval"].items()}
        need = self.steps * self.hp.batch_size
        if len(train) < need:
            raise XltError(f"the training examples give {len(train)} model rows, fewer than --train-steps x "
                           f"--batch-size = {need}; lower --train-steps")
        self.train_feats = train.subset(need)
        return {"eval_rows": int(sum(len(f) for f in self.eval_feats.values())),
                "tokenise_padding_share": 0.0}   # features are stored unpadded

    def train(self) -> dict:
        from xlt import data as xdata
        from xlt.train import fit

        feats, hp, tt, seed = self.train_feats, self.hp, self.tt, self.seed
        groups = xdata.batch_order(feats.lengths, hp.per_step_batch, True, seed * 100_003)
        real = sum(int(feats.lengths[g].sum()) for g in groups)
        padded = sum(len(g) * int(feats.lengths[g].max()) for g in groups)
        result = fit(self.loaded.model, lambda epoch: xdata.batches(feats, hp.per_step_batch, shuffle=True,
                                                                    seed=seed * 100_003 + epoch,
                                                                    collate_fn=tt.collate),
                     xdata.num_batches(feats, hp.per_step_batch), hp, seed=seed, device=self.device,
                     loss_fn=tt.loss)
        return {"train_steps": result.steps, "train_rows": len(feats), "final_loss": result.losses[-1],
                "train_padding_share": _padding(real, padded)}

    def evaluate(self) -> dict:
        from xlt import data as xdata
        from xlt.evaluate import evaluate_splits

        data = {("eval", lang): (self.rows["eval"][lang], f) for lang, f in self.eval_feats.items()}
        ev = evaluate_splits(self.loaded.model, data, self.tt, self.rows["metrics"],
                             batch_size=self.hp.eval_batch_size, device=self.device)
        real = padded = 0
        for f in self.eval_feats.values():
            for g in xdata.batch_order(f.lengths, self.hp.eval_batch_size, shuffle=False):
                real, padded = real + int(f.lengths[g].sum()), padded + len(g) * int(f.lengths[g].max())
        scores = {lang: {k: (float(v) if isinstance(v, (float, np.floating)) else int(v)) for k, v in m.items()}
                  for lang, m in ev.metrics["eval"].items()}
        self.predictions = ev.predictions
        return {"scores": scores, "evaluate_padding_share": _padding(real, padded)}

    def details(self) -> dict[str, Any]:
        return {"impl": self.loaded.impl, "windows_per_example": {
            lang: len(f) / max(1, len(self.rows["eval"][lang])) for lang, f in self.eval_feats.items()}}

    def close(self) -> None:
        pass


PIPELINE = XltPipeline
