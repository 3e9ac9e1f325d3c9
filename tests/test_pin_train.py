"""Pins on the numbers the training loop produces, each against an independent computation.

- the learning rate of every optimizer step against transformers' linear warmup/decay in closed form;
- the divergence guard on NaN, +inf and -inf losses, and the step it names;
- SiFT's one ascent step: the reference formula (DeBERTa's sift.py) recomputed here, and uphill;
- the AdamW groups fit actually builds (biases and norm weights never decayed);
- selection: the best dev step's weights are the ones left in the model;
- resume: an interrupted and resumed run equals the uninterrupted one step by step (losses, weights, history).

The fast tests use a small torch classifier defined here (the unit under test is `fit`, not a model); the
resume test uses the tiny DeBERTa-v3 checkpoint with dropout on, real XNLI pairs and xlt.data batches, so the
RNG and data position a checkpoint must carry are the real ones.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

# Imports from xlt in one place (modules are moving: train -> train + device, tasks -> a package).
from tests import factories
from xlt import data as xdata
from xlt.device import Device
from xlt.models import load_model
from xlt.errors import XltError
from xlt.spec import Hyperparams
from xlt.tasks import get_task, load_split
from xlt.train import Sift, TrainingDiverged, fit, param_groups, symmetric_kl


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


# --------------------------------------------------------------------------------------------------
# A small classifier and synthetic batches for the loop's arithmetic


class Bag(nn.Module):
    """Embedding bag -> LayerNorm -> dropout -> linear; `fit`'s model contract (ids, mask, types) -> logits."""

    def __init__(self, vocab=50, dim=16, labels=3, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.emb = nn.Embedding(vocab, dim)
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(0.1)
        self.out = nn.Linear(dim, labels)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (self.emb(input_ids) * mask).sum(1) / mask.sum(1)
        return self.out(self.drop(torch.tanh(self.norm(pooled))))


def synthetic_batches(n_batches, batch=4, length=6, vocab=50, labels=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        ids = torch.randint(0, vocab, (batch, length), generator=g)
        mask = torch.ones(batch, length, dtype=torch.long)
        mask[0, length // 2:] = 0
        out.append({"input_ids": ids, "attention_mask": mask, "labels": torch.randint(0, labels, (batch,), generator=g)})
    return out


def epochs_of(batches_list):
    """batches(epoch): the same batches, in an order that differs per epoch (so position matters)."""
    def batches(epoch):
        k = epoch % len(batches_list)
        return batches_list[k:] + batches_list[:k]
    return batches


class RecordingAdamW(torch.optim.AdamW):
    """AdamW that remembers its groups and the learning rate each `step()` actually used."""

    made: list["RecordingAdamW"] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.used_lrs: list[list[float]] = []
        RecordingAdamW.made.append(self)

    def step(self, closure=None):
        self.used_lrs.append([g["lr"] for g in self.param_groups])
        return super().step(closure)


@pytest.fixture
def recording_adamw(monkeypatch):
    RecordingAdamW.made = []
    monkeypatch.setattr(torch.optim, "AdamW", RecordingAdamW)
    return RecordingAdamW.made


def linear_warmup_decay(step: int, warmup: int, total: int) -> float:
    """transformers.get_linear_schedule_with_warmup's multiplier after `step` scheduler steps, written out:
    0 -> 1 linearly over `warmup` steps, then 1 -> 0 linearly at `total`."""
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


# --------------------------------------------------------------------------------------------------
# One step, as textbooks write it (first: it catches most changes to the loop, and fast)


def textbook_loop(model, batches, n_batches, hp, seed):
    """The fine-tuning loop written out the plain way (torch + transformers' scheduler), for the Bag model:
    decayed weights listed by hand, the mean loss of each group of `grad_accum` batches (a short group at an
    epoch's end), gradient clipping, AdamW (fused), the scheduler after the optimizer."""
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(seed)
    model.train()
    decay = [model.emb.weight, model.out.weight]
    no_decay = [model.norm.weight, model.norm.bias, model.out.bias]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": hp.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=hp.lr, eps=hp.adam_eps,
                            fused=True)   # torch's one-kernel AdamW, the transformers Trainer's default
    per_epoch = math.ceil(n_batches / hp.grad_accum)
    total = math.ceil(per_epoch * hp.epochs)
    sched = get_linear_schedule_with_warmup(opt, min(hp.warmup_steps, total), total)
    losses, epoch, tokens = [], 0, 0
    while len(losses) < total:
        epoch_batches = list(batches(epoch))
        for start in range(0, n_batches, hp.grad_accum):
            group = epoch_batches[start:start + hp.grad_accum]
            step_loss = 0.0
            for b in group:
                tokens += int(b["attention_mask"].sum())
                loss = F.cross_entropy(model(b["input_ids"], b["attention_mask"]), b["labels"])
                (loss / len(group)).backward()
                step_loss += loss.item() / len(group)
            torch.nn.utils.clip_grad_norm_(model.parameters(), hp.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad()
            losses.append(step_loss)
            if len(losses) == total:
                break
        epoch += 1
    return losses, tokens


@pytest.mark.parametrize("grad_accum, n_batches, epochs", [(1, 4, 2.0), (2, 5, 1.7)])
def test_fit_equals_the_textbook_loop_step_by_step(grad_accum, n_batches, epochs):
    """Catches any change to what a step computes: the loss divided by the wrong count, gradients not cleared
    or cleared before the step, clipping skipped or misapplied (it is active here), eps or weight decay not
    passed, the scheduler stepped at the wrong time, an epoch's short last group dropped or merged, a wrong
    step count for fractional epochs. Bitwise: the same operations in the same order."""
    hp = Hyperparams(lr=5e-2, epochs=epochs, batch_size=4 * grad_accum, grad_accum=grad_accum, warmup_steps=2,
                     weight_decay=0.1, max_grad_norm=0.05, adam_eps=1e-4)
    batches = epochs_of(synthetic_batches(n_batches))
    ours, theirs = Bag(), Bag()
    result = fit(ours, batches, n_batches, hp, seed=3)
    expected, tokens = textbook_loop(theirs, batches, n_batches, hp, seed=3)
    assert result.losses == expected and result.steps == len(expected)
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))
    assert result.train_tokens == tokens


# --------------------------------------------------------------------------------------------------
# Learning-rate schedule


@pytest.mark.parametrize("n_batches, grad_accum, epochs, warmup, total", [
    (4, 1, 3.0, 5, 12),      # warmup of 5 in 12 steps: an off-by-one shows on every warmup step
    (5, 2, 2.5, 3, 8),       # accumulation: ceil(5 / 2) = 3 steps an epoch, 2.5 epochs -> 8 steps
    (4, 1, 2.0, 0, 8),       # no warmup: the first step runs at the full rate
    (4, 1, 2.0, 20, 8),      # warmup longer than the run is clamped to it
])
def test_lr_of_every_step_is_transformers_linear_schedule(recording_adamw, n_batches, grad_accum, epochs,
                                                          warmup, total):
    """Catches a schedule off by one step (warmup+1, the scheduler stepped before the optimizer, a wrong
    total), a wrong step count for fractional epochs or accumulation, and a wrong base rate."""
    lr = 1e-3
    hp = Hyperparams(lr=lr, epochs=epochs, batch_size=4 * grad_accum, grad_accum=grad_accum, warmup_steps=warmup)
    events = []
    result = fit(Bag(), epochs_of(synthetic_batches(n_batches)), n_batches, hp, seed=0, on_event=events.append)
    assert result.steps == total
    start = next(e for e in events if e["event"] == "train_start")
    assert start["total_steps"] == total and start["steps_per_epoch"] == math.ceil(n_batches / grad_accum)
    w = min(warmup, total)
    (opt,) = recording_adamw
    used = [lrs[0] for lrs in opt.used_lrs]
    assert len(used) == total
    assert used == pytest.approx([lr * linear_warmup_decay(s, w, total) for s in range(total)], rel=1e-9, abs=1e-15)
    assert all(lrs[0] == lrs[1] for lrs in opt.used_lrs)            # both AdamW groups follow the schedule
    # the "lr" a step event reports is the rate the next step will use
    reported = [e["lr"] for e in events if e["event"] == "step"]
    assert reported == pytest.approx([lr * linear_warmup_decay(s, w, total) for s in range(1, total + 1)],
                                     rel=1e-9, abs=1e-15)


def test_a_warmup_longer_than_the_run_is_flagged_with_the_rate_it_reaches():
    """Warmup 20 in a run of 8 steps: the rate only rises, to 8/20 of --lr at the last step. Catches the flag or
    the warning missing, or the rate it names computed wrongly."""
    events = []
    result = fit(Bag(), epochs_of(synthetic_batches(4)), 4, Hyperparams(lr=1e-3, epochs=2, batch_size=4,
                                                                        warmup_steps=20),
                 seed=0, on_event=events.append)
    assert result.warnings == ["warmup_longer_than_run:20>8"]
    (warning,) = [e["message"] for e in events if e["event"] == "warning"]
    assert "warmup of 20 steps is longer than the whole run (8 steps)" in warning
    assert "only rises, to 0.0004 of --lr 0.001 at the last step" in warning
    assert fit(Bag(), epochs_of(synthetic_batches(4)), 4, Hyperparams(lr=1e-3, epochs=2, batch_size=4,
                                                                      warmup_steps=8), seed=0).warnings == []


def test_training_time_is_a_part_of_the_time_fit_took():
    """train_s sums the loop's own intervals (evaluations excluded), so it lies between 0 and the wall time of
    the whole call. Not a speed assertion: catches the interval arithmetic (now + tic, now / tic) that turns
    seconds into clock readings."""
    import time

    slow_dev = lambda model: time.sleep(0.05) or 0.5   # noqa: E731 - evaluations are not training time
    tic = time.perf_counter()
    result = fit(Bag(), epochs_of(synthetic_batches(4)), 4, Hyperparams(lr=1e-3, epochs=2, batch_size=4,
                                                                        eval_every=1),
                 seed=0, dev_eval=slow_dev)
    wall = time.perf_counter() - tic
    assert 0 < result.train_s < wall - 8 * 0.05 and result.tokens_per_s == result.train_tokens / result.train_s


def test_optimizer_groups_fit_builds_decay_weights_but_not_biases_or_norms(recording_adamw):
    """Catches fit passing the wrong weight decay (or none) to AdamW, or decaying LayerNorm weights/biases."""
    model = Bag()
    hp = Hyperparams(lr=1e-3, epochs=1, batch_size=4, weight_decay=0.05, adam_eps=1e-7)
    fit(model, epochs_of(synthetic_batches(2)), 2, hp, seed=0)
    (opt,) = recording_adamw
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {g["weight_decay"]: sorted(names[id(p)] for p in g["params"]) for g in opt.param_groups}
    assert groups == {0.05: ["emb.weight", "out.weight"], 0.0: ["norm.bias", "norm.weight", "out.bias"]}
    assert all(g["eps"] == 1e-7 for g in opt.param_groups)


class CustomRMSNorm(nn.Module):
    """A norm that is not an nn.LayerNorm: recognised by its class name."""

    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * self.weight


def test_param_groups_by_rule_on_mixed_modules():
    """Catches a bias/norm rule that misses GroupNorm, a custom *Norm class or a bias-only module, or that
    hands frozen parameters to the optimizer."""
    class PostNormBlock(nn.Module):      # "norm" in a container's name: its own children are not norms
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 4, bias=False)

    model = nn.Sequential(nn.Linear(4, 4), nn.GroupNorm(2, 4), CustomRMSNorm(4), nn.Embedding(10, 4),
                          nn.Linear(4, 2, bias=False), nn.LayerNorm(4), PostNormBlock())
    model[3].weight.requires_grad_(False)        # frozen: in no group
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert sorted(names[id(p)] for p in decay["params"]) == ["0.weight", "4.weight", "6.proj.weight"]
    assert sorted(names[id(p)] for p in no_decay["params"]) == ["0.bias", "1.bias", "1.weight", "2.weight",
                                                               "5.bias", "5.weight"]


@pytest.mark.parametrize("fixture", ["tiny_deberta_v3", "tiny_xlmr"])
def test_param_groups_on_real_checkpoints(fixture, request):
    """Every bias and every LayerNorm weight of a real model (native DeBERTa, transformers' XLM-R) is undecayed;
    every other trainable tensor is decayed; the groups partition the parameters."""
    model = load_model(str(request.getfixturevalue(fixture)), "classification", 3).model
    decay, no_decay = param_groups(model, 0.01)
    norm_params = {id(p) for m in model.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters(False)}
    expected_no = {n for n, p in model.named_parameters() if n.endswith("bias") or id(p) in norm_params}
    names = {id(p): n for n, p in model.named_parameters()}
    got_no = {names[id(p)] for p in no_decay["params"]}
    got_decay = {names[id(p)] for p in decay["params"]}
    assert got_no == expected_no and any("LayerNorm.weight" in n for n in got_no)
    assert got_decay == set(names.values()) - expected_no


def test_epochs_are_asked_for_in_order_even_when_one_comes_up_short():
    """Catches the epoch counter moving backwards or repeating (the data order of each epoch comes from its
    number): when an epoch yields fewer batches than announced, fit goes on with the next one."""
    asked, seen = [], []
    data = synthetic_batches(4)
    first_ids = [int(b["input_ids"][0, 0]) for b in data]

    class Watched(Bag):
        def forward(self, input_ids, attention_mask, token_type_ids=None):
            if self.training:
                seen.append(int(input_ids[0, 0]))
            return super().forward(input_ids, attention_mask, token_type_ids)

    def batches(epoch):
        asked.append(epoch)
        return data[:3] if epoch == 0 else data       # epoch 0 is one batch short of the 4 announced

    events = []
    result = fit(Watched(), batches, 4, Hyperparams(lr=1e-3, epochs=2, batch_size=4), seed=0, on_event=events.append)
    assert result.steps == 8 and asked == [0, 1, 2]
    assert seen == first_ids[:3] + first_ids + first_ids[:1]          # the next epoch starts at its first batch
    assert [e["loss"] for e in events if e["event"] == "step"] == result.losses


@pytest.mark.parametrize("precision, scaled", [("fp32", False), ("bf16", False), ("fp16", True)])
def test_loss_scaling_only_in_fp16(tmp_path, precision, scaled):
    """Catches a GradScaler switched on for fp32 or bf16 (or off for fp16): its state is what a checkpoint
    keeps."""
    hp = Hyperparams(lr=1e-3, epochs=1, batch_size=4)
    fit(Bag(), epochs_of(synthetic_batches(2)), 2, hp, seed=0, device=Device.of("cpu", precision), checkpoint_dir=tmp_path,
        checkpoint_every=1)
    state = torch.load(tmp_path / "last.pt", weights_only=False)["scaler"]
    assert bool(state) == scaled and (not scaled or state["scale"] > 1)


@pytest.mark.timeout(30)
def test_an_epoch_without_batches_is_an_error_not_an_endless_loop():
    """Catches the empty-epoch guard never firing: fit would spin forever asking for batches."""
    hp = Hyperparams(lr=1e-3, epochs=2, batch_size=4)
    with pytest.raises(XltError, match="training batches of an epoch came back empty"):
        fit(Bag(), lambda epoch: iter(()), 3, hp, seed=0)
    with pytest.raises(XltError, match="no training batches"):
        fit(Bag(), lambda epoch: iter(()), 0, hp, seed=0)
    assert fit(Bag(), epochs_of(synthetic_batches(1)), 1, hp, seed=0).steps == 2    # one batch is enough


# --------------------------------------------------------------------------------------------------
# Divergence guard


class GoesBad(Bag):
    """Finite logits for the first `good` training forwards, then NaN logits or a certain -inf log-prob."""

    def __init__(self, mode, good):
        super().__init__()
        self.mode, self.good, self.calls = mode, good, 0

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        logits = super().forward(input_ids, attention_mask, token_type_ids)
        if self.training:
            self.calls += 1
            if self.calls > self.good:
                if self.mode == "nan":
                    return logits * float("nan")
                # class 0 certain: log p(label) = -inf for every label != 0, so the loss is +inf
                inf = torch.full_like(logits, float("-inf"))
                inf[:, 0] = 0.0
                return logits * 0 + inf
        return logits


def nonzero_labels(batches_list):
    for b in batches_list:
        b["labels"] = 1 + b["labels"] % 2
    return batches_list


@pytest.mark.parametrize("mode, value", [("nan", "nan"), ("+inf", "inf")])
def test_divergence_guard_stops_on_nan_and_inf_losses_at_their_step(mode, value):
    """Catches a guard that checks only for NaN (or only for inf), and a wrong step in the error."""
    hp = Hyperparams(lr=1e-3, epochs=2, batch_size=4, grad_accum=2)
    batches = epochs_of(nonzero_labels(synthetic_batches(4)))
    with pytest.raises(TrainingDiverged, match=rf"loss became {value} at step 3 of 4 \(epoch 2, precision fp32\)") \
            as info:
        fit(GoesBad(mode, good=4), batches, 4, hp, seed=0)    # 2 forwards a step: the 5th is step 3's
    assert info.value.step == 3


@pytest.mark.parametrize("precision, advice", [("fp32", "Try a lower --lr (now 0.001)"),
                                               ("bf16", "Try --precision fp32 and/or a lower --lr (now 0.001)")])
def test_divergence_advice_suggests_fp32_only_to_a_run_that_is_not_fp32(precision, advice):
    """Catches the fp32 advice given to an fp32 run, or withheld from a bf16 one."""
    hp = Hyperparams(lr=1e-3, epochs=1, batch_size=4)
    with pytest.raises(TrainingDiverged, match=rf"precision {precision}\); the run stopped\. {re.escape(advice)}$"):
        fit(GoesBad("nan", good=0), epochs_of(nonzero_labels(synthetic_batches(2))), 2, hp, seed=0,
            device=Device.of("cpu", precision))


def test_divergence_guard_stops_on_a_negative_infinite_loss():
    """-inf: cross-entropy cannot reach it, a weighted extra term can (here SiFT's weight); the guard must
    treat it like NaN and +inf instead of stepping the optimizer on it."""
    model = Bag()
    hp = Hyperparams(lr=1e-3, epochs=1, batch_size=4, sift=True, sift_lambda=float("-inf"), sift_init=0.5,
                     sift_lr=0.1)
    with pytest.raises(TrainingDiverged, match=r"loss became -inf at step 1 of 2") as info:
        fit(model, epochs_of(synthetic_batches(2)), 2, hp, seed=0, sift_layer=model.norm)
    assert info.value.step == 1


# --------------------------------------------------------------------------------------------------
# SiFT


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_fit_adds_the_weighted_sift_term_to_the_loss(grad_accum):
    """Catches the adversarial term added with the wrong weight (lambda + adv, lambda / adv, unweighted) or
    averaged wrongly over accumulated batches: without dropout, the first step's clean passes are the plain
    run's, so its loss is the plain loss plus lambda times the mean adversarial term."""
    hp = Hyperparams(lr=1e-2, epochs=1, batch_size=4 * grad_accum, grad_accum=grad_accum, sift_init=0.1,
                     sift_lr=0.1)
    batches = epochs_of(synthetic_batches(4))
    plain_model, model = Bag(), Bag()
    plain_model.drop.p = model.drop.p = 0.0
    plain = fit(plain_model, batches, 4, hp, seed=0)
    sift = fit(model, batches, 4, dataclasses.replace(hp, sift=True, sift_lambda=2.5), seed=0, sift_layer=model.norm)
    assert len(sift.sift_losses) == sift.steps == 4 // grad_accum and sift.sift_losses[0] > 1e-4
    assert sift.losses[0] == pytest.approx(plain.losses[0] + 2.5 * sift.sift_losses[0], rel=1e-6)


class Tagger(Bag):
    """Per-token logits (B, T, C) with B, T and C all different: a flattening along the wrong axis shows."""

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        return self.out(self.drop(torch.tanh(self.norm(self.emb(input_ids)))))


def token_loss(logits, batch):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["input_ids"].reshape(-1) % 3)


def test_sift_without_a_projection_compares_one_distribution_per_position():
    """A type without `sift_logits` gets every last-axis row of the logits as one distribution. Catches the
    default flattening along another axis (rows of B or T values instead of C-class distributions)."""
    hp = Hyperparams(lr=1e-2, epochs=1, batch_size=4, sift=True, sift_init=0.1, sift_lr=0.1)
    runs = []
    for project in (None, lambda logits, batch: logits.reshape(-1, 3)):
        model = Tagger()
        runs.append(fit(model, epochs_of(synthetic_batches(2, length=5)), 2, hp, seed=0, sift_layer=model.norm,
                        loss_fn=token_loss, sift_logits=project))
    assert runs[0].sift_losses == runs[1].sift_losses and runs[0].losses == runs[1].losses
    assert runs[0].sift_losses[0] > 1e-6


class Perturbable(nn.Module):
    """x -> LayerNorm -> two nonlinear layers -> logits: the adversarial KL is not a quadratic in delta."""

    def __init__(self, dim=8, labels=4):
        super().__init__()
        torch.manual_seed(1)
        self.norm = nn.LayerNorm(dim)
        self.mid = nn.Linear(dim, 16)
        self.out = nn.Linear(16, labels)
        self.x = torch.randn(6, 5, dim) * 3 + 1

    def forward(self):
        return self.out(torch.tanh(self.mid(self.norm(self.x)))).mean(1) * 4


def kl_at(model, delta, clean, forward_only=False):
    """The symmetric KL (or only KL(clean || perturbed)) with the LayerNorm fed its normalised (no affine)
    input plus delta, as sift.py's pre-hook on the target layer does, computed without Sift."""
    base = F.layer_norm(model.x, model.x.shape[-1:], eps=1e-7)
    h = model.norm(base + delta)
    logits = model.out(torch.tanh(model.mid(h))).mean(1) * 4
    ls, lt = F.log_softmax(logits, -1), F.log_softmax(clean, -1)
    forward = (lt.exp() * (lt - ls)).sum(-1)
    return forward if forward_only else forward + (ls.exp() * (ls - lt)).sum(-1)


def test_sift_step_is_the_reference_normalised_ascent_and_goes_uphill():
    """Catches a descent step (delta -= ...), a wrong normalisation axis, a wrong clamp or init scale, and the
    perturbation being added to the un-normalised input (DeBERTa/sift/sift.py's PerturbationLayer)."""
    model = Perturbable()
    init, lr = 0.2, 0.05      # a step small enough that its direction decides whether the KL grows
    with torch.no_grad():
        clean = model()
    sift = Sift(model.norm, init=init, lr=lr)
    model()                                        # the clean pass Sift remembers
    torch.manual_seed(123)
    adv = sift.loss(model, clean)
    sift.remove()

    torch.manual_seed(123)                         # the same initial perturbation, drawn the reference way
    delta0 = torch.empty(model.x.shape).normal_(0, init).clamp_(-2 * init, 2 * init)
    assert (delta0.abs() == 2 * init).any()        # the clamp matters for this draw
    # sift.py's ascent gradient: the clean logits are a detached target, so only the cross-entropy of the
    # perturbed distribution against the clean one has a gradient in delta
    d = delta0.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(kl_at(model, d, clean, forward_only=True).sum(), d)
    delta1 = delta0 + lr * g / (1e-6 + g.abs().amax(-1, keepdim=True))
    with torch.no_grad():
        kl0, kl1 = kl_at(model, delta0, clean).mean(), kl_at(model, delta1, clean).mean()
        descent = kl_at(model, delta0 - lr * g / (1e-6 + g.abs().amax(-1, keepdim=True)), clean).mean()
    assert adv.item() == pytest.approx(kl1.item(), rel=1e-4)
    assert kl1 > 2 * kl0 > 0 and descent < kl0     # uphill, clearly; the same step downhill would shrink it
    adv.backward()                                 # the adversarial term trains the parameters
    assert model.mid.weight.grad is not None and model.mid.weight.grad.abs().sum() > 0


def symmetric_kl_float64(logits, target):
    """Both KL directions per example, in float64 from whatever the logits hold."""
    ls, lt = F.log_softmax(logits.double(), -1), F.log_softmax(target.double(), -1)
    return (lt.exp() * (lt - ls)).sum(-1) + (ls.exp() * (ls - lt)).sum(-1)


def test_sift_under_bf16_autocast_computes_its_kl_in_fp32():
    """SiFT in a bf16 run (CPU autocast, as `--precision bf16` trains): the model's logits are bf16, and the
    adversarial term Sift returns must equal the symmetric KL of exactly those logits computed in float64
    within 1e-6 (fp32 arithmetic on bf16 inputs: seen 2e-8). Computed in bf16 instead, it is off by about 1e-3
    on terms of 1e-2 to 1e-1 (seen: 1.3e-3 on a small linear head, 3e-3 in the mutation run). Catches
    symmetric_kl losing its upcast (`logits.float()`), which only shows under autocast."""
    model = Perturbable()
    seen = []

    def keep(logits):                      # Sift's projection: sees every pass's logits, changes nothing
        seen.append(logits)
        return logits

    with torch.autocast("cpu", dtype=torch.bfloat16):
        clean = model()
        sift = Sift(model.norm, init=0.2, lr=0.05)
        model()                            # the clean pass Sift remembers
        torch.manual_seed(5)
        adv = sift.loss(model, clean, keep)
    sift.remove()
    clean_seen, ascent_logits, final_logits = seen
    with torch.autocast("cpu", dtype=torch.bfloat16):
        direct = symmetric_kl(final_logits, clean_seen)              # per example
    assert clean.dtype == final_logits.dtype == torch.bfloat16       # else this test could not see the bug
    assert adv.dtype == direct.dtype == torch.float32
    expected = symmetric_kl_float64(final_logits, clean_seen).mean()
    assert 1e-2 < expected.item() < 1.0
    assert abs(adv.item() - expected.item()) < 1e-6
    assert torch.allclose(direct.double(), symmetric_kl_float64(final_logits, clean_seen), rtol=0, atol=1e-6)


def test_symmetric_kl_values_against_scipy_style_sums():
    """Catches a one-sided KL, a swapped sign or a missing direction: both KL terms summed per example."""
    torch.manual_seed(0)
    a, b = torch.randn(7, 5) * 2, torch.randn(7, 5) * 2
    p, q = a.softmax(-1).double(), b.softmax(-1).double()
    expected = (p * (p / q).log()).sum(-1) + (q * (q / p).log()).sum(-1)
    assert torch.allclose(symmetric_kl(a, b).double(), expected, atol=1e-5)
    assert torch.allclose(symmetric_kl(a.view(7, 1, 5), b.view(7, 1, 5)).double(), expected, atol=1e-5)


# --------------------------------------------------------------------------------------------------
# Selection


@pytest.mark.parametrize("eval_every, expected_steps", [(3, [3, 6, 8]), (0, [4, 8])])
def test_selection_restores_the_best_dev_step_weights(eval_every, expected_steps):
    """Catches selection keeping the last state, the wrong best step, a tie replacing the earlier best, and an
    evaluation cadence that misses the epoch end or the last step."""
    model = Bag()
    scripted = {3: [0.5, 0.8, 0.8], 2: [0.7, 0.6]}[len(expected_steps)]
    seen = []

    def dev_eval(m):
        assert not m.training                      # evaluated in eval mode
        seen.append(copy.deepcopy(m.state_dict()))
        return scripted[len(seen) - 1]

    hp = Hyperparams(lr=1e-2, epochs=2, batch_size=4, eval_every=eval_every)
    result = fit(model, epochs_of(synthetic_batches(4)), 4, hp, seed=0, dev_eval=dev_eval)
    assert [h["step"] for h in result.history] == expected_steps
    assert [h["value"] for h in result.history] == scripted
    best = scripted.index(max(scripted))           # the first of equal values
    assert result.best_step == expected_steps[best] and result.best_value == scripted[best]
    final = model.state_dict()
    assert all(torch.equal(final[k], seen[best][k]) for k in final)
    assert not all(torch.equal(final[k], seen[-1][k]) for k in final)     # the best is not the last state
    assert not model.training


@pytest.mark.parametrize("eval_every, checkpoint_every, expected", [(3, 0, [3, 6]), (3, 2, [2, 3, 4, 6]),
                                                                     (0, 0, [4]), (0, 5, [4, 5]), (5, 4, [4, 5])])
def test_a_checkpoint_follows_every_dev_evaluation_and_every_n_steps_but_the_last(tmp_path, eval_every,
                                                                                   checkpoint_every, expected):
    """A resumable checkpoint at each dev evaluation (so resume never loses a selection) and every
    `checkpoint_every` steps, none at the last step (the run is over). Catches an evaluation that no longer
    triggers a checkpoint, a periodic checkpoint at the wrong steps, or one written after the end."""
    events = []
    hp = Hyperparams(lr=1e-3, epochs=2, batch_size=4, eval_every=eval_every)
    fit(Bag(), epochs_of(synthetic_batches(4)), 4, hp, seed=0, dev_eval=lambda m: 0.5, checkpoint_dir=tmp_path,
        checkpoint_every=checkpoint_every, on_event=events.append)
    assert [e["step"] for e in events if e["event"] == "checkpoint"] == expected
    assert torch.load(tmp_path / "last.pt", weights_only=True)["result"]["steps"] == expected[-1]


# --------------------------------------------------------------------------------------------------
# Resume, step by step, on the real pieces


def _real_setup(checkpoint, shared_data, n=48):
    clf = load_model(str(checkpoint), "classification", 3)
    split = load_split(get_task("xnli"), "train", "en", shared_data).head(n)
    feats = factories.featurize(split, clf.tokenizer, 40)
    dev = factories.featurize(load_split(get_task("xnli"), "validation", "en", shared_data).head(24), clf.tokenizer, 40)
    return clf, feats, dev


def _neg_dev_loss(dev):
    batch = next(xdata.batches(dev, len(dev)))

    def dev_eval(model):
        with torch.no_grad():
            logits = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        return -float(F.cross_entropy(logits.float(), batch["labels"]))
    return dev_eval


class Killed(BaseException):
    """Stands in for a kill: not an Exception, nothing inside fit catches it."""


@pytest.mark.parametrize("grad_accum, kill_at, resumed_from", [(1, 9, 8), (2, 5, 4)])
def test_resume_equals_the_uninterrupted_run_step_by_step(tiny_deberta_v3, shared_data, tmp_path, grad_accum,
                                                          kill_at, resumed_from):
    """Catches a resume that restarts the interrupted epoch from its first batch, loses the RNG state (dropout
    is on), the optimizer or scheduler state, the best state or the dev history: 48 pairs in 6 batches of 8,
    the checkpoint taken mid-epoch (position 2 of 6), killed one step later; every later step's loss, the final
    weights and the dev history must equal an uninterrupted run's."""
    hp = Hyperparams(lr=3e-3, epochs=2, batch_size=8 * grad_accum, grad_accum=grad_accum, warmup_steps=3,
                     eval_every=5 // grad_accum, max_seq_len=40)
    clf, feats, dev = _real_setup(tiny_deberta_v3, shared_data)
    per_step = hp.per_step_batch
    n_batches = xdata.num_batches(feats, per_step)
    assert n_batches == 6

    def batches(epoch):
        return xdata.batches(feats, per_step, shuffle=True, seed=1000 + epoch)

    initial = copy.deepcopy(clf.model.state_dict())
    whole_steps = []
    whole = fit(clf.model, batches, n_batches, hp, seed=5, dev_eval=_neg_dev_loss(dev),
                on_event=lambda e: whole_steps.append(e) if e["event"] == "step" else None)
    whole_weights = copy.deepcopy(clf.model.state_dict())

    clf.model.load_state_dict(initial)
    ckpt = tmp_path / "ckpt"

    def kill(step):
        if step == kill_at:
            raise Killed()

    with pytest.raises(Killed):
        fit(clf.model, batches, n_batches, hp, seed=5, dev_eval=_neg_dev_loss(dev), checkpoint_dir=ckpt,
            checkpoint_every=4 // grad_accum, on_step=kill)
    # a fresh model object, as a new process would have: only the checkpoint carries the state
    fresh = load_model(str(tiny_deberta_v3), "classification", 3).model
    events = []
    resumed = fit(fresh, batches, n_batches, hp, seed=5, dev_eval=_neg_dev_loss(dev), checkpoint_dir=ckpt,
                  resume=True, on_event=events.append)
    assert resumed.resumed_from_step == resumed_from
    start = next(e for e in events if e["event"] == "resumed")
    assert (start["epoch"], start["position"]) == (1, 2)                 # mid-epoch: 2 of 6 batches consumed
    later = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in later] == list(range(resumed_from + 1, whole.steps + 1))
    assert [e["loss"] for e in later] == [e["loss"] for e in whole_steps[resumed_from:]]
    assert [e["lr"] for e in later] == [e["lr"] for e in whole_steps[resumed_from:]]
    assert resumed.losses == whole.losses
    assert resumed.history == whole.history and resumed.best_step == whole.best_step
    assert resumed.best_step != whole.steps                       # the restored state is an earlier best
    final = fresh.state_dict()
    assert all(torch.equal(final[k], whole_weights[k]) for k in final)
