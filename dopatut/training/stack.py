"""Training many models of one shape at once: one batched matrix multiply instead of one per model.

S models with the same structure (the seeds of one method, or the settings of a grid) are stacked along a
new first axis, and `torch.func.vmap` runs one forward pass over the whole stack, so each nn.Linear becomes
one batched matrix multiply over the S models. The stacks are what autograd differentiates, so no step copies
parameters into a stack or gradients out of it; Adam updates each model's slice as a tensor of its own (one
parameter group per learning rate), and the models receive their trained values after every epoch. Each model
keeps its own initialisation and data order (a generator seeded with its config's seed, drawn exactly as
`train.fit` draws it): a model trains the same, bit for bit, in any stack of two or more, and differs from
`train.fit`, or from a stack of one (one matrix multiply where a stack has a batch of them, which some BLAS
libraries round otherwise: MKL on AVX-512), only by float rounding.

What is frozen is computed once. When a model's `stem` (FoundationMLP: the first layer's nn.Linear) has a
frozen weight, its product x W^T over the whole training set is the same at every step and every epoch: it
is computed once per model before training, and the layer is replaced by `PrecomputedLinear`, which adds
the bias (trainable or not) to the stored product.
"""
from __future__ import annotations

import copy
import time
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap
from tqdm.auto import tqdm

from ..methods.builtin import hook_for
from .train import (DivergedError, History, TrainConfig, adam, blown, diverged_message, evaluate,
                    first_bad_step)


class PrecomputedLinear(nn.Module):
    """Stands in for a frozen nn.Linear whose product x W^T was computed ahead: forward(x W^T) = x W^T + b."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features = self.out_features = linear.out_features  # it receives the product, not x
        self.bias = linear.bias

    def forward(self, product: torch.Tensor) -> torch.Tensor:
        return product if self.bias is None else product + self.bias


def frozen_stem(model: nn.Module) -> str | None:
    """The name of the model's stem if it is an nn.Linear with a frozen weight (its product can be precomputed)."""
    name = getattr(model, "stem", None)
    if name is None:
        return None
    layer = model.get_submodule(name)
    return name if type(layer) is nn.Linear and not layer.weight.requires_grad else None


def _stored(t: torch.Tensor, stacked: bool = False) -> torch.Tensor:
    """A matrix's training layout and back (a transpose; a view of its input); other tensors as they are."""
    return t.transpose(-1, -2) if t.dim() == 2 + stacked else t


def _check_stack(models, configs) -> None:
    if not models:
        raise ValueError("fit_many needs at least one model, got none")
    if len(configs) != len(models):
        raise ValueError(f"give one TrainConfig per model: {len(models)} models, {len(configs)} configs")
    if len({replace(c, lr=1.0, seed=0) for c in configs}) > 1:
        raise ValueError(f"models of one stack may differ only in lr and seed, got configs {configs}")
    shapes = [[(n, tuple(p.shape), p.requires_grad) for n, p in m.named_parameters()] for m in models]
    for i, s in enumerate(shapes[1:], 1):
        if s != shapes[0]:
            raise ValueError(f"model {i} does not have the parameters of model 0 (names, shapes, trainable)")
    if not any(p.requires_grad for p in models[0].parameters()):
        raise ValueError("the models have no trainable parameters; apply a method first")
    hook = hook_for(models[0])  # the stack trains through one template, a copy of model 0: its hook and settings
    for i, model in enumerate(models[1:], 1):
        if hook_for(model) is not hook:
            raise ValueError(f"model {i} of the stack trains with another hook than model 0: stack models of one "
                             f"method only")
        if hook is not None and hook.settings(model) != hook.settings(models[0]):
            raise ValueError(f"model {i} of the stack trains with {hook.settings(model)}, model 0 with "
                             f"{hook.settings(models[0])} (its method's config): a stack trains as one, so give each "
                             f"setting a stack of its own")


def _stem_out(models, x, per_model: bool, template) -> tuple[torch.Tensor, str | None]:
    """The training inputs as the stacked models see them: x, or each model's precomputed stem product."""
    stem = frozen_stem(models[0])
    if stem is None:
        return x, None
    n = x.shape[1] if per_model else len(x)
    weight = models[0].get_parameter(f"{stem}.weight")
    data = torch.empty(len(models), n, weight.shape[0], dtype=x.dtype, device=x.device)
    with torch.no_grad():
        for s, model in enumerate(models):
            torch.matmul(x[s] if per_model else x, model.get_parameter(f"{stem}.weight").t(), out=data[s])
    parent, _, child = stem.rpartition(".")
    setattr(template.get_submodule(parent) if parent else template, child,
            PrecomputedLinear(template.get_submodule(stem)))
    return data, f"{stem}.weight"


def fit_many(models: list[nn.Module], x: torch.Tensor, y: torch.Tensor, configs, eval_sets: dict | None = None,
             progress: bool = True, desc: str | None = None, diverged: str = "raise") -> list[History]:
    """Train the trainable parameters of every model of `models` at once, each on its own order of (x, y).

    x (N, ...) and y (N,) shared by all models, or one data set per model: x (S, N, ...) and y (S, N).
    configs: one TrainConfig, or one per model (they may differ in lr and seed only; what the models' method trains
    with, such as the gates' temperature schedule, must be the same for all: its hook's settings). eval_sets: name ->
    (x, y), evaluated on every model after every epoch. The models are updated in place.
    diverged: a model whose loss stops being finite (read once an epoch) raises a DivergedError naming its
    learning rate and step ("raise"), or is marked in its History.diverged_at while the others train on ("mark":
    the models of a stack are independent, so the others' numbers are unchanged).
    """
    if diverged not in ("raise", "mark"):
        raise ValueError(f"diverged must be 'raise' or 'mark', got {diverged!r}")
    configs = [configs] * len(models) if isinstance(configs, TrainConfig) else list(configs)
    _check_stack(models, configs)
    config, n_models = configs[0], len(models)
    per_model = y.dim() == 2  # one data set per model: x (S, N, ...) and y (S, N)
    if (tuple(x.shape[:2]) != tuple(y.shape)) if per_model else len(x) != len(y):
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} disagree: expected x (N, ...) with y (N,), "
                         f"or one data set per model, x ({n_models}, N, ...) with y ({n_models}, N)")
    if per_model and len(y) != n_models:
        raise ValueError(f"y has data for {len(y)} models, but there are {n_models}")
    n = y.shape[-1]
    template = copy.deepcopy(models[0])
    data, skip = _stem_out(models, x, per_model, template)
    per_model = per_model or skip is not None
    trainable = [name for name, p in models[0].named_parameters() if p.requires_grad]
    frozen, shared = {}, {}
    for name, p in models[0].named_parameters():
        if not p.requires_grad and name != skip:
            values = [m.get_parameter(name).detach() for m in models]
            if all(torch.equal(values[0], v) for v in values[1:]):
                shared[name] = values[0]
            else:
                frozen[name] = torch.stack(values)
    buffers = {name: torch.stack([m.get_buffer(name) for m in models]) for name, _ in models[0].named_buffers()}
    # The stack is the leaf. A matrix is stacked transposed, (in, out) per model: its gradient comes out of the
    # batched multiply in that layout, with no transposing copy (a sixth of a foundation's step). Adam sees each
    # model's slice as a tensor of its own, one group per learning rate: the same kernels on the same shapes as
    # for a model trained alone, hence the same numbers bit for bit.
    leaves = {name: torch.stack([_stored(m.get_parameter(name).detach()) for m in models]).requires_grad_()
              for name in trainable}
    slices = {name: list(leaf.detach().unbind()) for name, leaf in leaves.items()}
    by_lr: dict[float, list] = {}
    for i, c in enumerate(configs):
        by_lr.setdefault(c.lr, []).extend(slices[name][i] for name in trainable)
    optimizer = adam([{"params": ps, "lr": lr} for lr, ps in by_lr.items()], config.lr, config.weight_decay,
                     config.fused)

    def adam_step():
        for name, leaf in leaves.items():
            for piece, grad in zip(slices[name], leaf.grad.unbind()):
                piece.grad = grad
            leaf.grad = None
        optimizer.step()

    def write_back():
        with torch.no_grad():
            for name, pieces in slices.items():
                for model, piece in zip(models, pieces):
                    model.get_parameter(name).copy_(_stored(piece))
    hook = hook_for(template)  # what the method does at each step (the gates' annealing); the loop knows no method

    def loss_of(p, b, xb, yb):
        loss = F.cross_entropy(functional_call(template, (shared, p, b), (xb,)), yb)
        return hook.loss(template, loss, config) if hook else loss
    batched_loss = vmap(loss_of)

    generators = [torch.Generator().manual_seed(c.seed) for c in configs]
    rows = torch.arange(n_models)[:, None]
    steps_per_epoch = -(-n // config.batch_size)
    total = config.epochs * steps_per_epoch
    histories = [History(accuracy={name: [] for name in (eval_sets or {})}) for _ in models]
    start, step = time.perf_counter(), 0
    bar = tqdm(total=total, desc=desc or f"{n_models} models", disable=not progress, leave=True)
    template.train()
    # Adam's moments of weights that stop getting gradients (dead ReLUs) decay into subnormal floats, which
    # make CPU arithmetic ~10x slower; flushing them to zero changes nothing above 1e-38.
    torch.set_flush_denormal(True)
    try:
        for _ in range(config.epochs):
            orders = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(data.device)
            loss_sum = torch.zeros(n_models, device=data.device)
            step_losses, first_step = [], step
            for i in range(0, n, config.batch_size):
                idx = orders[:, i:i + config.batch_size]
                if hook:
                    hook.before_step(template, step / max(total - 1, 1), config)
                params = {**frozen, **{name: _stored(leaf, stacked=True) for name, leaf in leaves.items()}}
                losses = batched_loss(params, buffers, data[rows, idx] if per_model else data[idx],
                                      y[rows, idx] if y.dim() == 2 else y[idx])
                losses.sum().backward()
                adam_step()
                loss_sum += losses.detach()
                step_losses.append(losses.detach())
                step += 1
                bar.update(1)
            _check_finite(step_losses, first_step, total, configs, histories, diverged)
            write_back()
            if hook:
                hook.end_of_epoch(template, models)
            _end_of_epoch(models, histories, loss_sum / steps_per_epoch, eval_sets)
            bar.set_postfix(loss=f"{loss_sum.mean().item() / steps_per_epoch:.3f}")
    finally:
        torch.set_flush_denormal(False)
    bar.close()
    for history in histories:
        history.seconds = time.perf_counter() - start
    return histories


def _check_finite(step_losses, first_step, total, configs, histories, diverged: str) -> None:
    """Once an epoch (one read of the losses): models whose loss blew up raise, or are marked."""
    steps = torch.stack(step_losses)
    bad = blown(steps).any(0).nonzero().flatten().tolist()
    if not bad:
        return
    for i in bad:
        if histories[i].diverged_at is None:
            histories[i].diverged_at = first_bad_step(list(steps[:, i]), first_step)
    if diverged == "raise":
        i = bad[0]
        raise DivergedError(diverged_message(histories[i].diverged_at, total, configs[i].lr,
                                             f" of model {i} of the stack" if len(configs) > 1 else ""))


def _end_of_epoch(models, histories, mean_losses, eval_sets) -> None:
    """Record each model's loss and evaluate it."""
    for model, history, loss in zip(models, histories, mean_losses.tolist()):
        history.loss.append(loss)
        for name, (xe, ye) in (eval_sets or {}).items():
            history.accuracy[name].append(evaluate(model, xe, ye))
