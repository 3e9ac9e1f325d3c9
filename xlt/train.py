"""The fine-tuning loop: fit a model on the source language, select the best step on its dev set.

`fit(model, batches, batches_per_epoch, hp, ...)` runs AdamW (no decay on biases and LayerNorm weights) with
transformers' linear warmup/decay schedule, gradient accumulation, gradient clipping, optional autocast
(bf16, or fp16 with a GradScaler), optional SiFT, and evaluates `dev_eval(model)` on the source-language dev
set every `hp.eval_every` optimizer steps (0 = once per epoch) and at the last step, keeping the best state.
The caller decides what `dev_eval` measures; by the zero-shot protocol it must only ever see source-language
dev data (the runner guarantees it), so target languages never influence selection.

Determinism: `seed_everything(seed)` seeds torch, random and numpy; the data order comes from
`batches(epoch)`, which the runner derives from the seed. A checkpoint (`checkpoint_dir/last.pt`, written
atomically at every dev evaluation and every `checkpoint_every` steps) holds the model, optimizer, scheduler,
scaler, every RNG state, the step and the data position (epoch, batches consumed), so `resume=True`
continues a killed run where the checkpoint left it; on CPU the continued run equals an uninterrupted one.

The loss comes from the task type (`loss_fn`); precision, autocast and seeding from `xlt.device`. A
checkpoint holds tensors and plain values only and is loaded with `weights_only=True`. Checkpoint files are
optional to the run (xlt.checkpoint_files): one that cannot be written (a full disk) is a warning event naming
the folder and the bytes it needs, a `checkpoint_not_written:` flag, and training goes on; `last.pt` is never
written while `best.pt` lacks the weights it selects.

Guards: a non-finite loss (NaN or +-inf) raises `TrainingDiverged` (an `XltError`) naming the step (and
suggesting `--precision fp32` when the run was not fp32 already); a warmup longer than the run is a warning
event and a flag; running out of memory raises an `XltError` naming the per-step batch size and the
`--grad-accum` that keeps the effective batch. This module never imports ray or typer and never prints:
progress goes to the `on_event` callback.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xlt.allocator import keep_freed_memory
from xlt.checkpoint_files import (BEST_FILE, CHECKPOINT_FILE, CheckpointNotWritten, load_checkpoint,  # noqa: F401
                                  write_checkpoint)
from xlt.device import Device, is_out_of_memory, oom_error, seed_everything
from xlt.errors import XltError
from xlt.spec import Hyperparams

Batch = dict[str, torch.Tensor]
Event = dict[str, Any]


class TrainingDiverged(XltError):
    """The loss became NaN or infinite; the run stops and is recorded as failed."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


# --- RNG state ---------------------------------------------------------------------------------------------

# Every RNG state as tensors and plain values, so a checkpoint loads with torch.load(weights_only=True):
# loading never runs code from the file (a pickle could).

def _rng_state() -> dict[str, Any]:
    version, words, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": [version, torch.tensor(words, dtype=torch.int64), gauss],
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    version, words, gauss = state["python"]
    random.setstate((version, tuple(int(w) for w in words.tolist()), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- optimizer ---------------------------------------------------------------------------------------------

def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: decay for weight matrices, none for biases and LayerNorm (or any norm) weights."""
    no_decay_ids = set()
    for module in model.modules():
        is_norm = isinstance(module, (nn.LayerNorm, nn.GroupNorm)) or "norm" in type(module).__name__.lower()
        for name, param in module.named_parameters(recurse=False):
            if name == "bias" or name.endswith(".bias") or is_norm:
                no_decay_ids.add(id(param))
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if id(param) in no_decay_ids else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# --- SiFT --------------------------------------------------------------------------------------------------

def symmetric_kl(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-example KL(p_t || p_s) + KL(p_s || p_t), each direction training only its second argument.

    Its gradients are those of the DeBERTa repository's `symmetric_kl` (cross-entropies against detached
    probabilities); the detached entropy terms added here make the value a true divergence (0 when equal).
    """
    log_s = F.log_softmax(logits.float().view(-1, logits.size(-1)), -1)
    log_t = F.log_softmax(target.float().view(-1, target.size(-1)), -1)
    p_s, p_t = log_s.exp().detach(), log_t.exp().detach()
    forward = (p_t * (log_t.detach() - log_s)).sum(-1)
    backward = (p_s * (log_s.detach() - log_t)).sum(-1)
    return forward + backward


class Sift:
    """Scale-invariant fine-tuning (He et al., DeBERTa, ICLR 2021, section 3.5), after `DeBERTa/sift/sift.py`.

    A forward pre-hook on the embedding LayerNorm (`Classifier.embedding_layernorm`). On the clean pass it
    remembers the LayerNorm's input and changes nothing. On a perturbed pass it feeds the LayerNorm the
    normalised (no affine) clean input plus a perturbation delta, as the reference `PerturbationLayer` does:
    delta starts as N(0, init) clamped to +-2 init, takes one ascent step on the symmetric KL between clean
    and perturbed logits, normalised per position by the gradient's max-abs over the hidden dimension
    (delta += lr * g / (1e-6 + max|g|)), and the loss on the second perturbed pass is returned.
    """

    def __init__(self, layer: nn.Module, init: float, lr: float):
        self.layer, self.init, self.lr = layer, init, lr
        self.mode = "clean"
        self.clean_input: torch.Tensor | None = None
        self.delta: torch.Tensor | None = None
        self.handle = layer.register_forward_pre_hook(self._hook)

    def _hook(self, module: nn.Module, args: tuple) -> tuple | None:
        x = args[0]
        if self.mode == "clean":
            self.clean_input = x.detach()
            return None
        base = F.layer_norm(self.clean_input.float(), self.clean_input.shape[-1:], eps=1e-7)
        return ((base + self.delta).to(x.dtype),) + tuple(args[1:])

    def loss(self, forward: Callable[[], torch.Tensor], clean_logits: torch.Tensor,
             project: Callable[[torch.Tensor], torch.Tensor] = lambda x: x) -> torch.Tensor:
        """The adversarial term for the batch whose clean pass produced `clean_logits` (mean over the
        distributions `project` picks out of the logits: examples, tagged words, span starts/ends)."""
        clean_logits = project(clean_logits)
        if self.clean_input is None:
            raise RuntimeError("SiFT: no clean pass recorded before the adversarial term")
        delta = torch.empty(self.clean_input.shape, device=self.clean_input.device, dtype=torch.float32)
        delta = delta.normal_(0, self.init).clamp_(-2 * self.init, 2 * self.init)
        self.mode = "perturbed"
        try:
            self.delta = delta.requires_grad_(True)
            ascent = symmetric_kl(project(forward()), clean_logits.detach()).sum()
            (grad,) = torch.autograd.grad(ascent, self.delta)   # parameters' .grad untouched
            with torch.no_grad():
                if torch.isfinite(grad).all():
                    delta = delta + self.lr * grad / (1e-6 + grad.abs().amax(-1, keepdim=True))
            self.delta = delta.detach()
            return symmetric_kl(project(forward()), clean_logits).mean()
        finally:
            self.mode, self.delta, self.clean_input = "clean", None, None

    def remove(self) -> None:
        self.handle.remove()


# --- the loop ----------------------------------------------------------------------------------------------

@dataclass
class TrainResult:
    steps: int                                  # optimizer steps taken (total, including before a resume)
    best_step: int | None                       # step of the selected state (None: no dev evaluation)
    best_value: float | None
    history: list[dict[str, float]] = field(default_factory=list)   # [{step, value}] dev evaluations
    losses: list[float] = field(default_factory=list)    # mean task+SiFT loss per optimizer step
    sift_losses: list[float] = field(default_factory=list)
    train_s: float = 0.0                        # wall time in the loop (dev evaluations excluded)
    train_tokens: int = 0                       # non-padding tokens seen
    resumed_from_step: int | None = None
    warnings: list[str] = field(default_factory=list)   # flags for the record, e.g. a warmup longer than the run
    best_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)   # weights at best_step (CPU)

    @property
    def tokens_per_s(self) -> float:
        return self.train_tokens / self.train_s if self.train_s > 0 else 0.0


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@keep_freed_memory()  # large blocks reused step to step, not page-faulted in again (xlt/allocator.py)
def fit(model: nn.Module, batches: Callable[[int], Iterable[Batch]], batches_per_epoch: int, hp: Hyperparams, *,
        seed: int, device: Device | torch.device | str = "cpu",
        dev_eval: Callable[[nn.Module], float] | None = None, sift_layer: nn.Module | None = None,
        checkpoint_dir: Path | None = None, checkpoint_every: int = 0, resume: bool = False,
        on_event: Callable[[Event], None] | None = None, on_step: Callable[[int], None] | None = None,
        loss_fn: Callable[[torch.Tensor, Batch], torch.Tensor] | None = None,
        sift_logits: Callable[[torch.Tensor, Batch], torch.Tensor] | None = None,
        restore_best: bool = True) -> TrainResult:
    """Fine-tune `model` in place; with `restore_best` leave it holding the best state (by `dev_eval`, higher
    is better), else leave it at the last step and the best state in `result.best_state` (the runner's
    select step loads it).

    batches(epoch) yields the training batches of that epoch (dicts with input_ids, attention_mask, optionally
    token_type_ids, and the targets `loss_fn` reads), the same ones for the same epoch every time it is called;
    batches_per_epoch is their count. loss_fn(logits, batch) is the task type's loss (default: cross-entropy
    against batch["labels"]); sift_logits(logits, batch) the (N, C) logits SiFT compares. `device` is a
    `xlt.device.Device` (a torch device or its name means fp32 there). `on_step(step)` runs after each optimizer step (and its
    evaluation/checkpoint) and may raise to stop the run.
    """
    loss_fn = loss_fn or (lambda logits, batch: F.cross_entropy(logits.float(), batch["labels"]))
    run_on = Device.of(device)
    device, precision = run_on.torch_device, run_on.precision
    emit = on_event or (lambda event: None)
    if batches_per_epoch < 1:
        raise XltError("no training batches: the training split is empty (check --max-train-samples and the data)")
    steps_per_epoch = math.ceil(batches_per_epoch / hp.grad_accum)
    total_steps = max(1, math.ceil(steps_per_epoch * hp.epochs))
    warmup = min(hp.warmup_steps, total_steps)
    warnings: list[str] = []
    if hp.warmup_steps > total_steps:
        warnings.append(f"warmup_longer_than_run:{hp.warmup_steps}>{total_steps}")
        emit({"event": "warning", "message": f"warmup of {hp.warmup_steps} steps is longer than the whole run "
              f"({total_steps} steps): the learning rate only rises, to {hp.lr * total_steps / hp.warmup_steps:.3g} "
              f"of --lr {hp.lr:g} at the last step. Lower --warmup (XTREME uses 0)"})
    from transformers import get_linear_schedule_with_warmup

    seed_everything(seed)
    model.to(device).train()
    # fused: one kernel per parameter for the whole update (CPU and CUDA), as the transformers Trainer's default
    # `adamw_torch_fused`; the per-op loop took half of a short-sentence mDeBERTa step (docs/benchmarks.md)
    optimizer = torch.optim.AdamW(param_groups(model, hp.weight_decay), lr=hp.lr, eps=hp.adam_eps,
                                  fused=device.type in ("cpu", "cuda"))
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    sift = Sift(sift_layer, hp.sift_init, hp.sift_lr) if hp.sift else None
    if hp.sift and sift_layer is None:
        raise XltError("SiFT needs the model's embedding LayerNorm; this model exposes none, run without --sift")

    result = TrainResult(steps=0, best_step=None, best_value=None, warnings=warnings)
    best_state: dict[str, torch.Tensor] | None = None
    epoch, position = 0, 0          # data position: batches of `epoch` already consumed
    best_on_disk: int | None = None  # the step whose weights best.pt holds
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir else None

    if resume and ckpt_path is not None and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        epoch, position = ckpt["epoch"], ckpt["position"]
        for key in ("steps", "best_step", "best_value", "history", "losses", "sift_losses", "train_s",
                    "train_tokens"):
            setattr(result, key, ckpt["result"][key])
        result.resumed_from_step = result.steps
        best_file = Path(checkpoint_dir) / BEST_FILE
        if result.best_step is not None and best_file.exists():
            best_state = load_checkpoint(best_file)
        best_on_disk = result.best_step
        _set_rng_state(ckpt["rng"])
        emit({"event": "resumed", "step": result.steps, "epoch": epoch, "position": position})

    unwritten: set[str] = set()   # files whose last write failed (warned once until one succeeds)

    def write_optional(obj: Any, path: Path) -> bool:
        """Write a checkpoint file; on failure warn (once), flag the run and go on training."""
        try:
            write_checkpoint(obj, path)
        except CheckpointNotWritten as exc:
            if path.name not in unwritten:
                unwritten.add(path.name)
                warnings.append(f"checkpoint_not_written:{path.name}@{result.steps}")
                emit({"event": "warning", "message": f"{exc}; training goes on without it (a --resume would "
                      "continue from the last checkpoint written, if any)"})
            return False
        unwritten.discard(path.name)
        return True

    def save_best() -> None:
        nonlocal best_on_disk
        if checkpoint_dir is not None and best_state is not None and \
                write_optional(best_state, Path(checkpoint_dir) / BEST_FILE):
            best_on_disk = result.best_step

    def save_checkpoint() -> None:
        if ckpt_path is None:
            return
        if best_on_disk != result.best_step:
            save_best()
            if best_on_disk != result.best_step:   # a last.pt must never select weights best.pt lacks
                return
        state = {k: getattr(result, k) for k in ("steps", "best_step", "best_value", "history", "losses",
                                                 "sift_losses", "train_s", "train_tokens")}
        if write_optional({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                           "rng": _rng_state(), "epoch": epoch, "position": position, "result": state,
                           "total_steps": total_steps}, ckpt_path):
            emit({"event": "checkpoint", "step": result.steps, "path": str(ckpt_path)})

    def evaluate_dev() -> None:
        nonlocal best_state
        model.eval()
        value = float(dev_eval(model))
        model.train()
        result.history.append({"step": result.steps, "value": value})
        improved = result.best_value is None or value > result.best_value
        if improved:
            result.best_step, result.best_value = result.steps, value
            best_state = _cpu_state(model)
            save_best()
        emit({"event": "dev", "step": result.steps, "value": value, "best_step": result.best_step,
              "best_value": result.best_value})

    def forward(batch: Batch) -> torch.Tensor:
        return model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))

    def step_on(group: list[Batch]) -> None:
        step_loss = step_sift = 0.0
        for batch in group:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items() if torch.is_tensor(v)}
            with run_on.autocast():
                logits = forward(batch)
                loss = loss_fn(logits, batch)
                if sift is not None:
                    project = (lambda x: sift_logits(x, batch)) if sift_logits is not None else \
                        (lambda x: x.reshape(-1, x.shape[-1]))
                    adv = sift.loss(lambda: forward(batch), logits, project)
                    step_sift += float(adv.detach()) / len(group)
                    loss = loss + hp.sift_lambda * adv
            if not torch.isfinite(loss.detach()):
                fix = "Try --precision fp32 and/or a lower --lr" if precision != "fp32" else "Try a lower --lr"
                raise TrainingDiverged(
                    f"the training loss became {float(loss.detach())} at step {result.steps + 1} of {total_steps} "
                    f"(epoch {epoch + 1}, precision {precision}); the run stopped. {fix} (now {hp.lr:g})",
                    step=result.steps + 1)
            scaler.scale(loss / len(group)).backward()
            step_loss += float(loss.detach()) / len(group)
            result.train_tokens += int(batch["attention_mask"].sum())
        scaler.unscale_(optimizer)
        if hp.max_grad_norm and hp.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), hp.max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        result.losses.append(step_loss)
        if sift is not None:
            result.sift_losses.append(step_sift)

    emit({"event": "train_start", "total_steps": total_steps, "steps_per_epoch": steps_per_epoch,
          "step": result.steps, "precision": precision, "device": str(device)})
    try:
        while result.steps < total_steps:
            group: list[Batch] = []
            tic = time.perf_counter()
            for batch in itertools.islice(batches(epoch), position, None):
                position += 1
                group.append(batch)
                if len(group) < hp.grad_accum and position < batches_per_epoch:
                    continue
                step_on(group)
                group = []
                result.steps += 1
                result.train_s += time.perf_counter() - tic
                emit({"event": "step", "step": result.steps, "total_steps": total_steps,
                      "loss": result.losses[-1], "lr": scheduler.get_last_lr()[0],
                      "tokens_per_s": result.tokens_per_s})
                end_of_epoch = position >= batches_per_epoch
                last = result.steps >= total_steps
                if end_of_epoch:
                    epoch, position = epoch + 1, 0
                evaluated = False
                if dev_eval is not None and (last or (hp.eval_every > 0 and result.steps % hp.eval_every == 0)
                                             or (hp.eval_every <= 0 and end_of_epoch)):
                    evaluate_dev()
                    evaluated = True
                if not last and (evaluated or (checkpoint_every > 0 and result.steps % checkpoint_every == 0)):
                    save_checkpoint()
                if on_step is not None:
                    on_step(result.steps)
                tic = time.perf_counter()
                if last or end_of_epoch:
                    break
            else:
                if position == 0:   # an epoch that yielded nothing: avoid looping forever
                    raise XltError("the training batches of an epoch came back empty; check the training data")
                epoch, position = epoch + 1, 0
    except Exception as exc:
        if is_out_of_memory(exc):
            raise oom_error(hp.per_step_batch, hp.grad_accum, hp.batch_size) from None
        raise
    finally:
        if sift is not None:
            sift.remove()

    result.best_state = best_state
    if restore_best and best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    emit({"event": "train_end", "step": result.steps, "best_step": result.best_step})
    return result


__all__ = ["fit", "TrainResult", "TrainingDiverged", "Sift", "symmetric_kl", "param_groups", "CHECKPOINT_FILE",
           "BEST_FILE"]
