"""Checks for the book's coding exercises: run the reader's function on chosen cases and say what is wrong.

    def soft_gate(z, a, threshold, gain, temperature):
        ...                                   # the reader writes this
    check_soft_gate(soft_gate)                # prints a tick, or what is wrong in plain words

A check calls the reader's function on small cases, compares with dopatut's own answer, and prints the first
problem it finds, phrased for the mistake it recognises (wrong shape, not the identity at initialisation, no
gradient reaching the threshold, ...). It returns True when every case passes. A function that still raises
NotImplementedError gets a reminder, not a traceback, so a notebook with blank exercises runs to the end.
"""
from __future__ import annotations

import math

import torch

OK = "✔ correct"


def _run(name: str, fn, *args):
    """Call the reader's function; (result, None) or (None, message)."""
    try:
        return fn(*args), None
    except NotImplementedError:
        return None, f"{name} is not written yet: replace the `raise NotImplementedError` line with your code."
    except Exception as err:  # noqa: BLE001 - the reader's error, reported in words
        return None, f"{name} raised {type(err).__name__}: {err}"


def _report(problems: list[str]) -> bool:
    print(OK if not problems else "✘ " + problems[0])
    return not problems


def _tensor(name: str, out, shape) -> str | None:
    if not isinstance(out, torch.Tensor):
        return f"{name} should return a torch.Tensor, got {type(out).__name__}"
    if tuple(out.shape) != tuple(shape):
        return f"{name} returned shape {tuple(out.shape)}, expected {tuple(shape)}"
    return None


# ---------------------------------------------------------------- chapter 3: the gate and its annealing
def reference_soft_gate(z, a, threshold, gain, temperature):
    return torch.sigmoid((z - threshold) / temperature) * gain * a


def reference_hard_gate(z, a, threshold, gain):
    return (z > threshold).to(z.dtype) * gain * a


def _gate_cases():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(64, 8, generator=gen) * 2
    return z, torch.relu(z), torch.randn(8, generator=gen) * 0.5, 1 + 0.3 * torch.randn(8, generator=gen)


def check_soft_gate(soft_gate) -> bool:
    """soft_gate(z, a, threshold, gain, temperature) = sigmoid((z - threshold) / temperature) * gain * a."""
    z, a, tau, g = _gate_cases()
    tau = tau.clone().requires_grad_(True)
    out, err = _run("soft_gate", soft_gate, z, a, tau, g, 0.5)
    problems = [err] if err else []
    if not problems:
        problems += [p for p in [_tensor("soft_gate", out, z.shape)] if p]
    if not problems:
        want = reference_soft_gate(z, a, tau, g, 0.5)
        if torch.allclose(out, reference_soft_gate(z, a, -tau, g, 0.5), atol=1e-5) and not torch.allclose(out, want):
            problems.append("the threshold has the wrong sign: the gate opens when z - threshold > 0")
        elif torch.allclose(out, reference_soft_gate(z, a, tau, g, 1.0), atol=1e-5):
            problems.append("the temperature is ignored: divide (z - threshold) by it before the sigmoid")
        elif torch.allclose(out, torch.sigmoid((z - tau) / 0.5) * a, atol=1e-5):
            problems.append("the gain is missing: the gated activation is multiplied by gain")
        elif torch.allclose(out, torch.sigmoid((z - tau) / 0.5) * g, atol=1e-5):
            problems.append("the activation a is missing: the gate scales a, it does not replace it")
        elif not torch.allclose(out, want, atol=1e-5):
            problems.append(f"values differ from sigmoid((z - threshold) / temperature) * gain * a by up to "
                            f"{(out - want).abs().max().item():.3g}")
        elif out.grad_fn is None:
            problems.append("no gradient reaches the threshold: build the output from the threshold tensor, "
                            "with torch operations, without .detach() or .item()")
    return _report(problems)


def check_hard_gate(hard_gate) -> bool:
    """hard_gate(z, a, threshold, gain) = 1[z > threshold] * gain * a; the identity at threshold 0, gain 1."""
    z, a, tau, g = _gate_cases()
    out, err = _run("hard_gate", hard_gate, z, a, tau, g)
    problems = [err] if err else []
    if not problems:
        problems += [p for p in [_tensor("hard_gate", out, z.shape)] if p]
    if not problems:
        identity, _ = _run("hard_gate", hard_gate, z, a, torch.zeros(8), torch.ones(8))
        want = reference_hard_gate(z, a, tau, g)
        ratio = (out / (g * a))[a != 0]  # the gate value of each firing neuron: 0 or 1 for a step
        if ((ratio >= -1e-6) & (ratio <= 1 + 1e-6)).all() and ((ratio > 1e-4) & (ratio < 1 - 1e-4)).any():
            problems.append("the hard gate is not a step: each neuron must be fully on (1) or fully off (0), "
                            "not in between as a sigmoid is")
        elif not torch.equal(identity, a):
            problems.append("at threshold 0 and gain 1 the hard gate must give back a exactly (relu already "
                            "silences z <= 0), but it does not")
        elif torch.allclose(out, (z > tau).to(z.dtype) * a) and not torch.allclose(out, want):
            problems.append("the gain is missing: the gated activation is multiplied by gain")
        elif not torch.allclose(out, want, atol=1e-6):
            problems.append(f"values differ from 1[z > threshold] * gain * a by up to {(out - want).abs().max().item():.3g}")
    return _report(problems)


def check_temperature_schedule(temperature_at) -> bool:
    """temperature_at(progress, start, end): geometric from `start` (progress 0) to `end` (progress 1)."""
    problems = []
    cases = {0.0: 1.0, 1.0: 0.1, 0.5: math.sqrt(0.1), 0.25: 0.1 ** 0.25}
    for progress, want in cases.items():
        got, err = _run("temperature_at", temperature_at, progress, 1.0, 0.1)
        if err:
            problems.append(err)
            break
        if not isinstance(got, (int, float)) or not math.isfinite(got):
            problems.append(f"temperature_at should return a number, got {got!r}")
            break
        if abs(got - want) > 1e-6 * max(1.0, want):
            if progress == 0.5 and abs(got - 0.55) < 1e-6:
                problems.append("halfway gives 0.55, the straight line from 1 to 0.1; the schedule is geometric: "
                                "start * (end / start) ** progress, so halfway is sqrt(1 * 0.1) = 0.316")
            else:
                problems.append(f"temperature_at({progress}, 1.0, 0.1) = {got:.4g}, expected {want:.4g}")
            break
    if not problems:
        outside = [_run("temperature_at", temperature_at, p, 1.0, 0.1)[0] for p in (-0.5, 1.5)]
        if outside != [1.0, 0.1] and not all(o is not None and abs(o - w) < 1e-9 for o, w in zip(outside, (1.0, 0.1))):
            problems.append(f"progress outside [0, 1] should be clamped: got {outside} for -0.5 and 1.5, "
                            "expected [1.0, 0.1]")
    return _report(problems)


# ---------------------------------------------------------------- chapter 4: LoRA
def reference_lora_forward(x, weight, bias, lora_A, lora_B, scaling):
    return x @ weight.t() + bias + scaling * (x @ lora_A.t() @ lora_B.t())


def reference_merge(weight, lora_A, lora_B, scaling):
    return weight + scaling * lora_B @ lora_A


def _lora_case(zero_B: bool = False):
    gen = torch.Generator().manual_seed(1)
    x, w, b = torch.randn(16, 12, generator=gen), torch.randn(6, 12, generator=gen), torch.randn(6, generator=gen)
    A = torch.randn(3, 12, generator=gen)
    B = torch.zeros(6, 3) if zero_B else torch.randn(6, 3, generator=gen)
    return x, w, b, A, B


def check_lora_forward(lora_forward) -> bool:
    """lora_forward(x, weight, bias, lora_A, lora_B, scaling) = x W^T + b + scaling * x A^T B^T."""
    x, w, b, A, B = _lora_case()
    out, err = _run("lora_forward", lora_forward, x, w, b, A, B, 2.0)
    problems = [err] if err else []
    if not problems:
        problems += [p for p in [_tensor("lora_forward", out, (16, 6))] if p]
    if not problems:
        at_init, _ = _run("lora_forward", lora_forward, x, w, b, A, torch.zeros(6, 3), 2.0)
        want = reference_lora_forward(x, w, b, A, B, 2.0)
        if not torch.allclose(at_init, x @ w.t() + b, atol=1e-5):
            problems.append("with B = 0 the layer must be exactly the base layer x W^T + b, but it is not")
        elif torch.allclose(out, reference_lora_forward(x, w, b, A, B, 1.0), atol=1e-4):
            problems.append("the scaling alpha / r is missing: multiply the low-rank branch by it")
        elif torch.allclose(out, x @ w.t() + 2.0 * (x @ A.t() @ B.t()), atol=1e-4):
            problems.append("the bias b is missing from the base layer")
        elif not torch.allclose(out, want, atol=1e-4):
            problems.append(f"values differ from x W^T + b + scaling * x A^T B^T by up to "
                            f"{(out - want).abs().max().item():.3g}")
    return _report(problems)


def check_merge(merge) -> bool:
    """merge(weight, lora_A, lora_B, scaling) = W + scaling * B A: the merged layer equals the unmerged one."""
    x, w, b, A, B = _lora_case()
    before = w.clone()
    out, err = _run("merge", merge, w, A, B, 2.0)
    problems = [err] if err else []
    if not problems:
        problems += [p for p in [_tensor("merge", out, w.shape)] if p]
    if not problems:
        if not torch.equal(w, before):
            problems.append("merge changed the weight it was given in place; return a new tensor")
        elif torch.allclose(out, w + B @ A, atol=1e-4) and not torch.allclose(out, reference_merge(w, A, B, 2.0)):
            problems.append("the scaling alpha / r is missing: W + scaling * B A")
        elif not torch.allclose(x @ out.t() + b, reference_lora_forward(x, w, b, A, B, 2.0), atol=1e-4):
            gap = (x @ out.t() + b - reference_lora_forward(x, w, b, A, B, 2.0)).abs().max().item()
            problems.append(f"merged != unmerged: the merged layer's outputs differ from the LoRA layer's by up to "
                            f"{gap:.3g}; the delta is B @ A (out x in), times the scaling")
    return _report(problems)


# ---------------------------------------------------------------- chapter 6: the exact split of a logit
def reference_contributions(h, head_weight):
    return h.unsqueeze(2) * head_weight.t().unsqueeze(0)


def check_contributions(contributions) -> bool:
    """contributions(h, head_weight) -> (N, neurons, classes), with contributions.sum(1) + bias == logits."""
    gen = torch.Generator().manual_seed(2)
    h, w, b = torch.relu(torch.randn(5, 7, generator=gen)), torch.randn(3, 7, generator=gen), torch.randn(3, generator=gen)
    out, err = _run("contributions", contributions, h, w)
    problems = [err] if err else []
    if not problems:
        if isinstance(out, torch.Tensor) and tuple(out.shape) == (5, 3, 7):
            problems.append("the axes are swapped: return (inputs, neurons, classes), not (inputs, classes, neurons)")
        else:
            problems += [p for p in [_tensor("contributions", out, (5, 7, 3))] if p]
    if not problems:
        logits = h @ w.t() + b
        if not torch.allclose(out.sum(1) + b, logits, atol=1e-5):
            problems.append("contributions.sum(1) + bias should equal the logits h W^T + b, but it does not: "
                            "neuron j adds h_j * W[c, j] to class c")
    return _report(problems)


def check_silence(silence) -> bool:
    """silence(h, j) -> a copy of h with neuron j set to 0 for every input; h itself unchanged."""
    gen = torch.Generator().manual_seed(3)
    h = torch.relu(torch.randn(4, 6, generator=gen)) + 0.1
    before = h.clone()
    out, err = _run("silence", silence, h, 2)
    problems = [err] if err else []
    if not problems:
        problems += [p for p in [_tensor("silence", out, h.shape)] if p]
    if not problems:
        want = before.clone()
        want[:, 2] = 0
        if not torch.equal(h, before):
            problems.append("silence changed h in place; clone it first, so the unsilenced activations survive")
        elif torch.equal(out[2], torch.zeros(6)):
            problems.append("you zeroed input (row) 2; silence neuron (column) 2 for every input: h[:, j]")
        elif not torch.equal(out, want):
            problems.append("only column j should become 0; every other value must stay as it was")
    return _report(problems)


# ---------------------------------------------------------------- chapter 5: the paired interval
def check_paired_interval(paired_interval) -> bool:
    """paired_interval(a, b) -> (mean, low, high) of a - b, paired, with Student's t at 95%."""
    from scipy import stats

    a = [0.971, 0.980, 0.962, 0.975, 0.972, 0.969, 0.977]
    b = [0.960, 0.975, 0.955, 0.970, 0.961, 0.970, 0.968]
    out, err = _run("paired_interval", paired_interval, a, b)
    problems = [err] if err else []
    if not problems and (not isinstance(out, (tuple, list)) or len(out) != 3):
        problems.append(f"paired_interval should return (mean, low, high), got {out!r}")
    if not problems:
        d = [x - y for x, y in zip(a, b)]
        mean = sum(d) / len(d)
        ci = stats.ttest_rel(a, b).confidence_interval(0.95)
        s_biased = math.sqrt(sum((x - mean) ** 2 for x in d) / len(d))
        half_normal = 1.959964 * math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1)) / math.sqrt(len(d))
        got_mean, low, high = (float(v) for v in out)
        if abs(got_mean - mean) > 1e-9:
            problems.append(f"the mean difference should be {mean:.5f}, got {got_mean:.5f}")
        elif abs((high - low) / 2 - half_normal) < 1e-7:
            problems.append("you used the normal's 1.96; with 7 seeds use Student's t with 6 degrees of freedom")
        elif abs((high - low) / 2 - stats.t.ppf(0.975, 6) * s_biased / math.sqrt(len(d))) < 1e-7:
            problems.append("the standard deviation should divide by n - 1, not n")
        elif abs(low - ci.low) > 1e-7 or abs(high - ci.high) > 1e-7:
            problems.append(f"the interval should be [{ci.low:.5f}, {ci.high:.5f}], got [{low:.5f}, {high:.5f}]")
    return _report(problems)


# ---------------------------------------------------------------- chapter 3: a mode trained with the reader's gate
def train_with_gate(base, soft_gate, hard_gate, config, angle_deg: float = 45.0, progress: bool = True,
                    **gate_options):
    """Specialise `base` with the reader's gate in every hidden layer, exactly as `pipeline.specialise` trains
    dopatut's (same initialisation, data order, annealing and optimizer). gate_options: Dopamine's (the temperature
    schedule, ...: protocol_config's keywords). Returns (model, hard-gate test accuracy)."""
    from ..foundations.data import mode_data
    from ..methods.gate import DopamineGate, GateSet, attach, hardened
    from ..methods.builtin import apply_method
    from ..training.stack import fit_many
    from ..training.train import evaluate, seed_everything

    class ReaderGate(DopamineGate):
        """dopatut's gate (parameters, annealing, hardening) computed with the reader's two functions."""

        def forward(self, z, a):
            if self.hard:
                return hard_gate(z, a, self.threshold, self.gain)
            return soft_gate(z, a, self.threshold, self.gain, self.temperature)

    seed_everything(config.seed)
    model = apply_method(base, "dopamine", verbose=False, **gate_options)
    mine = GateSet()
    for name, gate in GateSet.of(model).items():
        mine[name] = ReaderGate(gate.width, temperature=gate.temperature)
        mine[name].load_state_dict(gate.state_dict())
    attach(model, mine)
    x, y = mode_data("train", angle_deg)
    fit_many([model], x, y, config, progress=progress, desc="your gate")
    with hardened(model):
        return model, evaluate(model, *mode_data("test", angle_deg))


# ---------------------------------------------------------------- chapter 9: methods by target
def check_last_block_attention(pattern) -> bool:
    """`pattern` (a regular expression on the whole module name) should select the attention projections of the
    transformer's last block, and nothing else: blocks.1.attn.qkv and blocks.1.attn.proj."""
    from torch import nn

    from ..methods.targets import find_targets
    from ..foundations.vit import VisionTransformer, ViTConfig

    if pattern is NotImplemented or pattern is None:
        return _report(["the pattern is not written yet: replace NotImplemented with a string such as r\"...\"."])
    expected = ["blocks.1.attn.qkv", "blocks.1.attn.proj"]
    model = VisionTransformer(ViTConfig())
    try:
        found = find_targets(model, pattern, (nn.Linear,), "LoRA layers")
    except ValueError as err:
        return _report([f"dopatut refused the pattern: {err}"])
    return _report(_selection("pattern", found, expected,
                              "the whole name must match, and '.' matches any character unless escaped"))


def _selection(what: str, found: list[str], expected: list[str], hint: str) -> list[str]:
    """[] if `found` is `expected` (in any order), else the problem: what is extra, what is missing, and a hint."""
    if sorted(found) == sorted(expected):
        return []
    extra, missing = sorted(set(found) - set(expected)), sorted(set(expected) - set(found))
    return [f"the {what} selects {found}; " + "; ".join(
        part for part in (f"it should not select {extra}" if extra else "",
                          f"it misses {missing}" if missing else "") if part) + f". Hint: {hint}."]


# ---------------------------------------------------------------- chapter 10: targets on your own model
def check_last_mlp_predicate(predicate) -> bool:
    """`predicate(name, module)` should select the activation of the last block's MLP of a GPT-2 (built from a
    config, two blocks), and nothing else: transformer.h.1.mlp.act."""
    import warnings

    from transformers import GPT2Config, GPT2LMHeadModel

    from ..methods.gate import GateSet

    if predicate is NotImplemented or predicate is None:
        return _report(["the predicate is not written yet: replace NotImplemented with a function "
                        "(name, module) -> bool."])
    if not callable(predicate):
        return _report([f"targets should be a function of (name, module), got {type(predicate).__name__}"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=32,
                                           bos_token_id=0, eos_token_id=0))
    expected = ["transformer.h.1.mlp.act"]
    try:
        found = list(GateSet.for_model(model, targets=predicate))
    except NotImplementedError:
        return _report(["the predicate is not written yet: replace the `raise NotImplementedError` line with "
                        "your code."])
    except Exception as err:  # noqa: BLE001 - the reader's predicate, reported in words
        return _report([f"dopatut refused the predicate: {str(err).splitlines()[0]}. Hint: a gate goes on an "
                        f"activation module; print the model to see what each block holds."])
    return _report(_selection("predicate", found, expected,
                              "the name tells the block; the module's class tells an activation"))


# ---------------------------------------------------------------- chapter 5: a method of your own
def check_attach_without_gain(attach_fn) -> bool:
    """`attach_fn(model, options, context)` should put a gate on every activation of a frozen model, in place,
    with trainable thresholds and gains fixed at 1: Dopamine without its gain."""
    import copy

    from torch import nn

    from ..methods.gate import GatedActivation, GateSet, hardened
    from ..foundations.model import freeze
    from ..methods.registry import Context

    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    model = freeze(copy.deepcopy(base))
    _, problem = _run("your attach function", attach_fn, model, {}, Context())
    if problem:
        return _report([problem])
    gates = GateSet.of(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    problems = []
    if not any(isinstance(m, GatedActivation) for m in model.modules()):
        problems.append("no gate is on the model: make the gates (GateSet.for_model), then put them on it (attach).")
    elif sorted(gates) != ["1", "3"]:
        problems.append(f"gates sit on {sorted(gates)}; every activation should have one, here '1' and '3'.")
    elif any(g.gain.requires_grad for g in gates.values()):
        problems.append("the gains still train: this method keeps them fixed at 1 (GateSet.for_model takes learn_gain=).")
    elif not all(g.threshold.requires_grad for g in gates.values()):
        problems.append("the thresholds do not train: they are what this method learns.")
    elif trainable != {n for n in trainable if ".gates." in n}:
        problems.append(f"base weights train too ({sorted(n for n in trainable if '.gates.' not in n)}): only "
                        f"the gates should.")
    else:
        x = torch.randn(32, 6)
        with torch.no_grad(), hardened(model):
            if not torch.equal(model(x), base(x)):
                problems.append("at init the hard-gated model should be the base: start each gate where it is open.")
    return _report(problems)
