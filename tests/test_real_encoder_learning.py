"""Tests that learn, on a real pretrained multilingual encoder (multilingual-e5-small, 117M parameters, XLM-R's
vocabulary; the `real_encoder` fixture, tests/real_encoder.py): random tiny models test plumbing, these test that
fine-tuning through xlt transfers. Each run is small enough for CI on 2 cores; each threshold was set from a
measured run with a margin, and docs/testing.md lists them beside the values they came from.

Every test here needs the encoder: in CI (`CI` or XLT_REQUIRE_REAL_ENCODER=1) they fail when it cannot be had,
elsewhere they skip, saying why.
"""

from __future__ import annotations

import json
import math
import textwrap

import pytest
import torch

from xlt import data as xdata
from xlt import runner
from xlt.models import load_model
from xlt.spec import Hyperparams, RunSpec
from xlt.tasks import get_task, load_split
from xlt.train import fit

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]   # tests/conftest.py


def show(capsys, line: str) -> None:
    """Print a measured value past pytest's capture: thresholds are set from these lines."""
    with capsys.disabled():
        print(f"\n{line}")


# --------------------------------------------------------------------------------------------------
# xlt's loop equals a plain transformers loop on the real model


def plain_transformers_loop(model, batches, hp: Hyperparams, total_steps: int, seed: int):
    """Fine-tuning written the plain way with transformers' own pieces: the model's own loss (`labels=`), the
    Trainer's rule for which parameters get weight decay, torch's AdamW ("adamw_torch"), clipping, and
    get_linear_schedule_with_warmup stepped after the optimizer. Returns the losses, learning rates and
    gradient norms (before clipping) of every step."""
    from transformers import Trainer, get_linear_schedule_with_warmup

    decay = set(Trainer.get_decay_parameter_names(None, model))
    groups = [{"params": [p for n, p in model.named_parameters() if n in decay], "weight_decay": hp.weight_decay},
              {"params": [p for n, p in model.named_parameters() if n not in decay], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=hp.lr, eps=hp.adam_eps)
    scheduler = get_linear_schedule_with_warmup(optimizer, hp.warmup_steps, total_steps)
    torch.manual_seed(seed)
    model.train()
    losses, lrs, norms = [], [], []
    for batch in batches[:total_steps]:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        out.loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), hp.max_grad_norm)))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(out.loss.item())
        lrs.append(scheduler.get_last_lr()[0])
    return losses, lrs, norms


def test_xlt_training_equals_a_plain_transformers_loop_on_the_real_model(real_encoder, shared_data):
    """me5-small-nli with a fresh classifier, 5 steps of 8 real English MultiNLI pairs, fp32, dropout on (both
    loops seeded alike): xlt's `fit` and the plain loop above give the same loss at every step and the same
    weights after the last, to 1e-6. Weight decay is large (0.1) so that decaying a LayerNorm weight or a bias
    moves it visibly; clipping is active (the gradient norms are above max_grad_norm); warmup 2 of 5 steps.
    Catches, together: a wrong loss, biases or LayerNorm weights decayed (or weights not decayed), a schedule
    off by a step or without warmup/decay, clipping skipped or applied after the step, gradients not cleared."""
    nli = str(real_encoder / "me5-small-nli")
    torch.manual_seed(0)
    ours = load_model(nli, "classification", 3)
    assert ours.impl == "hf"
    from transformers import AutoModelForSequenceClassification

    theirs = AutoModelForSequenceClassification.from_pretrained(nli)
    theirs.load_state_dict(ours.model.hf.state_dict())             # the same freshly initialised classifier
    task = get_task("xnli")
    feats = xdata.featurize(load_split(task, "train", "en", shared_data).head(40), ours.tokenizer,
                            {"max_seq_len": 64})
    batches = list(xdata.batches(feats, 8, shuffle=True, seed=3, collate_fn=task.task_type.collate))
    hp = Hyperparams(lr=1e-4, epochs=1, batch_size=8, max_seq_len=64, warmup_steps=2, weight_decay=0.1,
                     max_grad_norm=0.3, adam_eps=1e-6)

    lrs_ours = []
    result = fit(ours.model, lambda epoch: iter(batches), len(batches), hp, seed=11, loss_fn=task.task_type.loss,
                 on_event=lambda e: lrs_ours.append(e["lr"]) if e["event"] == "step" else None)
    losses, lrs, norms = plain_transformers_loop(theirs, batches, hp, result.steps, seed=11)

    assert result.steps == 5
    assert all(norm > hp.max_grad_norm for norm in norms), norms           # clipping acts on every step
    assert lrs_ours == pytest.approx(lrs, rel=1e-12) and lrs[1] == hp.lr   # warmup of 2 steps, then decay
    assert result.losses == pytest.approx(losses, rel=1e-6, abs=1e-7)
    state = theirs.state_dict()
    for name, tensor in ours.model.hf.state_dict().items():
        assert torch.allclose(tensor, state[name], rtol=0, atol=1e-6), name
