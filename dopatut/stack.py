"""Training many models of one shape at once: one batched matrix multiply instead of one per model.

S models with the same structure (the seeds of one method, or the settings of a grid) have their parameters
stacked along a new first axis, and `torch.func.vmap` runs one forward pass over the whole stack, so each
nn.Linear becomes one batched matrix multiply over the S models. Each model keeps its own initialisation,
learning rate and data order (a generator seeded with its config's seed, drawn exactly as `train.fit`
draws it). A model trains the same, bit for bit, alone or in a stack of any size; against `train.fit` it
differs only by float rounding (batched kernels, and `StackedAdam` instead of torch's fused Adam).

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

from .gate import gate_activity, gates_of, set_temperature, temperature_at
from .train import History, TrainConfig, evaluate


class PrecomputedLinear(nn.Module):
    """Stands in for a frozen nn.Linear whose product x W^T was computed ahead: forward(x W^T) = x W^T + b."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features = self.out_features = linear.out_features  # it receives the product, not x
        self.bias = linear.bias

    def forward(self, product: torch.Tensor) -> torch.Tensor:
        return product if self.bias is None else product + self.bias


class StackedAdam:
    """Adam on stacked parameters (models on the first axis), each model with its own learning rate.

    The update is torch's Adam (no weight decay unless asked), written out so that `lrs` can be a vector.
    """

    def __init__(self, params, lrs, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        self.params = list(params)
        self.lrs = torch.as_tensor(lrs, dtype=torch.float32)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.state = [(torch.zeros_like(p), torch.zeros_like(p)) for p in self.params]
        self.steps = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        correction1, correction2 = 1 - beta1 ** self.steps, (1 - beta2 ** self.steps) ** 0.5
        for p, (m, v) in zip(self.params, self.state):
            grad = p.grad if not self.weight_decay else p.grad.add(p, alpha=self.weight_decay)
            m.lerp_(grad, 1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            step_size = (self.lrs / correction1).to(p.device).view(-1, *[1] * (p.dim() - 1))
            p.sub_(step_size * m / (v.sqrt() / correction2).add_(self.eps))


def frozen_stem(model: nn.Module) -> str | None:
    """The name of the model's stem if it is an nn.Linear with a frozen weight (its product can be precomputed)."""
    name = getattr(model, "stem", None)
    if name is None:
        return None
    layer = model.get_submodule(name)
    return name if type(layer) is nn.Linear and not layer.weight.requires_grad else None


def _check_stack(models, configs) -> None:
    if not models:
        raise ValueError("fit_many needs at least one model, got none")
    if len(configs) != len(models):
        raise ValueError(f"give one TrainConfig per model: {len(models)} models, {len(configs)} configs")
    shared = {replace(c, lr=1.0, seed=0) for c in configs}
    if len(shared) > 1:
        raise ValueError(f"models of one stack may differ only in lr and seed, got configs {configs}")
    shapes = [[(n, tuple(p.shape), p.requires_grad) for n, p in m.named_parameters()] for m in models]
    for i, s in enumerate(shapes[1:], 1):
        if s != shapes[0]:
            raise ValueError(f"model {i} does not have the parameters of model 0 (names, shapes, trainable)")


def fit_many(models: list[nn.Module], x: torch.Tensor, y: torch.Tensor, configs, eval_sets: dict | None = None,
             progress: bool = True, desc: str | None = None) -> list[History]:
    """Train the trainable parameters of every model of `models` at once, each on its own order of (x, y).

    x: (N, ...) shared by all models, or (S, N, ...) one data set per model; y: (N,) or (S, N).
    configs: one TrainConfig, or one per model (they may differ in lr and seed only). eval_sets: name ->
    (x, y), evaluated on every model after every epoch. The models are updated in place.
    """
    configs = [configs] * len(models) if isinstance(configs, TrainConfig) else list(configs)
    _check_stack(models, configs)
    config, n_models = configs[0], len(models)
    per_model = x.dim() > 2 or (x.dim() == 2 and y.dim() == 2)
    n = x.shape[1] if per_model else len(x)
    if (y.shape[-1] if per_model else len(y)) != n:
        raise ValueError(f"x has {n} samples but y has {y.shape[-1] if per_model else len(y)}")
    names = [name for name, _ in models[0].named_parameters()]
    trainable = [name for name, p in models[0].named_parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("the models have no trainable parameters; apply a method first")
    params = {name: torch.stack([m.get_parameter(name).detach() for m in models]) for name in names}
    buffers = {name: torch.stack([m.get_buffer(name) for m in models]) for name, _ in models[0].named_buffers()}
    template = copy.deepcopy(models[0])
    stem, data = frozen_stem(models[0]), x
    if stem is not None:  # frozen first product: once per model, not once per step
        weights = params.pop(f"{stem}.weight")
        data = torch.empty(n_models, n, weights.shape[1], dtype=x.dtype, device=x.device)
        for s in range(n_models):
            torch.matmul(x[s] if per_model else x, weights[s].t(), out=data[s])
        per_model = True
        parent, _, child = stem.rpartition(".")
        setattr(template.get_submodule(parent) if parent else template, child,
                PrecomputedLinear(template.get_submodule(stem)))
    for name in trainable:
        params[name].requires_grad_(True)
    optimizer = StackedAdam([params[n] for n in trainable], [c.lr for c in configs], weight_decay=config.weight_decay)
    gated = bool(gates_of(template))

    def loss_of(p, b, xb, yb):
        loss = F.cross_entropy(functional_call(template, (p, b), (xb,)), yb)
        if gated and config.sparsity > 0:
            loss = loss + config.sparsity * gate_activity(template)
        return loss
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
            for i in range(0, n, config.batch_size):
                idx = orders[:, i:i + config.batch_size]
                xb = data[rows, idx] if per_model else data[idx]
                yb = y[rows, idx] if y.dim() == 2 else y[idx]
                if gated:
                    set_temperature(template, temperature_at(step / max(total - 1, 1), *config.temperature))
                losses = batched_loss(params, buffers, xb, yb)
                optimizer.zero_grad()
                losses.sum().backward()
                optimizer.step()
                loss_sum += losses.detach()
                step += 1
                bar.update(1)
            _write_back(models, params, trainable, template)
            for s, history in enumerate(histories):
                history.loss.append(loss_sum[s].item() / steps_per_epoch)
                for name, (xe, ye) in (eval_sets or {}).items():
                    history.accuracy[name].append(evaluate(models[s], xe, ye))
            bar.set_postfix(loss=f"{sum(h.loss[-1] for h in histories) / n_models:.3f}")
    finally:
        torch.set_flush_denormal(False)
    bar.close()
    seconds = time.perf_counter() - start
    for history in histories:
        history.seconds = seconds
    return histories


@torch.no_grad()
def _write_back(models, params, trainable, template) -> None:
    """Copy the trained slices back into each model; gates take the template's current temperature."""
    temperatures = [g.temperature for g in gates_of(template)]
    for s, model in enumerate(models):
        for name in trainable:
            model.get_parameter(name).copy_(params[name][s])
        for gate, temperature in zip(gates_of(model), temperatures):
            gate.temperature = temperature
