"""Each checker accepts the reference and names the mistake of each plausible wrong answer."""
import math

import pytest
import torch

from dopatut.course import exercises as ex
from dopatut.methods.gate import temperature_at


def run(check, fn, capsys):
    ok = check(fn)
    return ok, capsys.readouterr().out


def not_written(*args):
    raise NotImplementedError("Student exercise: write it")


CASES = {
    ex.check_soft_gate: (ex.reference_soft_gate, [
        (lambda z, a, t, g, T: torch.sigmoid((z + t) / T) * g * a, "wrong sign"),
        (lambda z, a, t, g, T: torch.sigmoid(z - t) * g * a, "temperature is ignored"),
        (lambda z, a, t, g, T: torch.sigmoid((z - t) / T) * a, "gain is missing"),
        (lambda z, a, t, g, T: torch.sigmoid((z - t.detach()) / T) * g * a, "no gradient reaches the threshold"),
        (lambda z, a, t, g, T: (torch.sigmoid((z - t) / T) * g * a)[:, :4], "returned shape"),
        (not_written, "not written yet"),
    ]),
    ex.check_hard_gate: (ex.reference_hard_gate, [
        (lambda z, a, t, g: (z > t).float() * g, "give back a exactly"),
        (lambda z, a, t, g: (z > t).float() * g * z, "values differ"),
        (lambda z, a, t, g: torch.sigmoid((z - t) / 0.1) * g * a, "not a step"),
        (lambda z, a, t, g: (z >= t).float() * g * a + 0 * (z == t).float(), None),  # ties almost never happen
        (lambda z, a, t, g: (z > t).float() * a, "gain is missing"),
        (lambda z, a, t, g: (z > t).float() * g * a + 1.0, "give back a exactly"),
    ]),
    ex.check_temperature_schedule: (temperature_at, [
        (lambda p, s, e: s + (e - s) * min(max(p, 0), 1), "straight line"),
        (lambda p, s, e: s * (e / s) ** p, "clamped"),
        (lambda p, s, e: e * (s / e) ** min(max(p, 0), 1), "expected 1"),
        (lambda p, s, e: "hot", "should return a number"),
    ]),
    ex.check_lora_forward: (ex.reference_lora_forward, [
        (lambda x, w, b, A, B, s: x @ w.t() + b + x @ A.t() @ B.t(), "scaling alpha / r is missing"),
        (lambda x, w, b, A, B, s: x @ w.t() + s * (x @ A.t() @ B.t()), "with B = 0"),
        (lambda x, w, b, A, B, s: x @ w.t() + b + s * (x @ A.t() @ B.t()) + 0.01, "with B = 0"),
        (lambda x, w, b, A, B, s: x @ w.t() + b + s * (x @ B @ A)[:, :6] if False else (x @ w.t())[:, :3],
         "returned shape"),
    ]),
    ex.check_merge: (ex.reference_merge, [
        (lambda w, A, B, s: w + B @ A, "scaling alpha / r is missing"),
        (lambda w, A, B, s: w.add_(s * B @ A), "in place"),
        (lambda w, A, B, s: w + s * (B @ A) * 0.3, "merged != unmerged"),
        (lambda w, A, B, s: (s * B @ A), "merged != unmerged"),
    ]),
    ex.check_contributions: (ex.reference_contributions, [
        (lambda h, w: h.unsqueeze(1) * w.unsqueeze(0), "axes are swapped"),
        (lambda h, w: h @ w.t(), "returned shape"),
        (lambda h, w: h.unsqueeze(2) * w.t().unsqueeze(0) * 2, "should equal the logits"),
    ]),
    ex.check_silence: (lambda h, j: h.clone().index_fill_(1, torch.tensor([j]), 0.0), [
        (lambda h, j: h.index_fill_(1, torch.tensor([j]), 0.0), "in place"),
        (lambda h, j: h.clone().index_fill_(0, torch.tensor([j]), 0.0), "row"),
        (lambda h, j: h.clone().index_fill_(1, torch.tensor([j, j + 1]), 0.0), "only column j"),
    ]),
}


def interval_with(z, ddof):
    def fn(a, b):
        d = [x - y for x, y in zip(a, b)]
        m = sum(d) / len(d)
        s = math.sqrt(sum((x - m) ** 2 for x in d) / (len(d) - ddof))
        return m, m - z(len(d)) * s / math.sqrt(len(d)), m + z(len(d)) * s / math.sqrt(len(d))
    return fn


def test_paired_interval_checker(capsys):
    from scipy import stats
    t = lambda n: stats.t.ppf(0.975, n - 1)  # noqa: E731
    assert run(ex.check_paired_interval, interval_with(t, 1), capsys)[0]
    for fn, words in ((interval_with(lambda n: 1.959964, 1), "normal's 1.96"), (interval_with(t, 0), "n - 1"),
                      (lambda a, b: (0.0, -1.0, 1.0), "mean difference"), (lambda a, b: 0.01, "(mean, low, high)")):
        ok, out = run(ex.check_paired_interval, fn, capsys)
        assert not ok and words in out, out


@pytest.mark.parametrize("check", list(CASES), ids=lambda c: c.__name__)
def test_checker_accepts_the_reference_and_names_each_mistake(check, capsys):
    reference, wrongs = CASES[check]
    ok, out = run(check, reference, capsys)
    assert ok and "✔" in out, out
    rejected = 0
    for fn, words in wrongs:
        ok, out = run(check, fn, capsys)
        if words is None:
            continue
        assert not ok and words in out, (words, out)
        rejected += 1
    assert rejected >= 3


def test_last_block_attention_check_answers_back(capsys):
    from dopatut.course.exercises import check_last_block_attention
    assert check_last_block_attention(r"blocks\.1\.attn\.(qkv|proj)")
    assert check_last_block_attention(["blocks.1.attn.qkv", "blocks.1.attn.proj"])
    assert not check_last_block_attention(NotImplemented)
    assert "not written yet" in capsys.readouterr().out
    assert not check_last_block_attention(r"blocks\.\d\.attn\.(qkv|proj)")
    assert "it should not select ['blocks.0.attn.proj', 'blocks.0.attn.qkv']" in capsys.readouterr().out
    assert not check_last_block_attention(r"blocks\.1\.attn\.qkv")
    assert "it misses ['blocks.1.attn.proj']" in capsys.readouterr().out
    assert not check_last_block_attention(r"blocks\.1\.mlp\.act")
    assert "dopatut refused the pattern: LoRA layers need modules of kind Linear" in capsys.readouterr().out


def test_last_mlp_predicate_check_answers_back(capsys):
    pytest.importorskip("transformers")
    from dopatut.course.exercises import check_last_mlp_predicate
    assert check_last_mlp_predicate(lambda name, m: name == "transformer.h.1.mlp.act")
    assert check_last_mlp_predicate(lambda name, m: name.startswith("transformer.h.1.") and name.endswith(".act"))
    assert not check_last_mlp_predicate(NotImplemented)
    assert "not written yet" in capsys.readouterr().out
    assert not check_last_mlp_predicate(not_written)
    assert "not written yet" in capsys.readouterr().out
    assert not check_last_mlp_predicate(lambda name, m: name.endswith("mlp.act"))
    assert "it should not select ['transformer.h.0.mlp.act']" in capsys.readouterr().out
    assert not check_last_mlp_predicate(lambda name, m: name == "transformer.h.1.mlp.c_fc")
    assert "dopatut refused the predicate: Dopamine gates go on activations" in capsys.readouterr().out
    assert not check_last_mlp_predicate(lambda name, m: False)
    assert "is true for no module of GPT2LMHeadModel" in capsys.readouterr().out


def test_attach_without_gain_check_answers_back(capsys):
    from dopatut.course.exercises import check_attach_without_gain
    from dopatut.methods.gate import GateSet, attach

    def reference(model, options, context):
        attach(model, GateSet.for_model(model, learn_gain=False), check=False)
    assert check_attach_without_gain(reference)
    assert not check_attach_without_gain(not_written)
    assert "not written yet" in capsys.readouterr().out
    mistakes = [
        (lambda m, o, c: GateSet.for_model(m, learn_gain=False), "no gate is on the model"),
        (lambda m, o, c: attach(m, GateSet.for_model(m), check=False), "the gains still train"),
        (lambda m, o, c: attach(m, GateSet.for_model(m, learn_gain=False, learn_threshold=False), check=False),
         "the thresholds do not train"),
        (lambda m, o, c: attach(m, GateSet.for_model(m, targets=["1"], learn_gain=False), check=False),
         "every activation should have one"),
        (lambda m, o, c: attach(m, GateSet.for_model(m, learn_gain=False, threshold_init=1.0), check=False),
         "should be the base"),
    ]
    for wrong, message in mistakes:
        assert not check_attach_without_gain(wrong)
        assert message in capsys.readouterr().out, message
