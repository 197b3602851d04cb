"""The explorer's state, driven from code: what its views would show, checked without a browser."""
import pytest
import torch

from dopatut.analysis.explorer import AttributionExplorer, input_patterns
from dopatut.methods.gate import gates_of, hardened
from dopatut.training.train import predict_logits
from explorer_models import explorer, models  # noqa: F401  (fixtures)


@pytest.mark.parametrize("name", ["frozen", "dopamine 45°", "lora"])
def test_contributions_plus_bias_are_the_logit(explorer, name):
    explorer.model_name = name
    logits = explorer.logits()
    for c in range(10):
        contrib, bias = explorer.contributions(c)
        assert contrib.sum() + bias == pytest.approx(float(logits[c]), abs=1e-4)


def test_silencing_the_top_neuron_removes_exactly_its_contribution(explorer):
    before_p, before_logits = explorer.probabilities(), explorer.logits()
    c = explorer.prediction
    neuron, value = explorer.top_neurons(1)[0]
    assert value > 0
    explorer.silence(explorer.last_layer, neuron)
    after_logits = explorer.logits()
    assert not torch.allclose(explorer.probabilities(), before_p)
    assert float(before_logits[c] - after_logits[c]) == pytest.approx(value, abs=1e-4)
    contrib, bias = explorer.contributions(c)
    assert contrib[neuron] == 0
    assert contrib.sum() + bias == pytest.approx(float(after_logits[c]), abs=1e-4)
    view = explorer.layers()[explorer.last_layer]
    assert view.output[neuron] == 0 and view.silenced == [neuron]
    assert neuron not in [n for n, _ in explorer.top_neurons(5, c)]
    explorer.unsilence(explorer.last_layer, neuron)
    assert torch.allclose(explorer.logits(), before_logits)


def test_silencing_a_first_layer_neuron_changes_the_last_layer(explorer):
    first = list(explorer.layers())[0]
    fired = torch.nonzero(explorer.layers()[first].firing).flatten()
    before = explorer.layers()[explorer.last_layer].drive.clone()
    for n in fired.tolist():
        explorer.silence(first, n)
    assert explorer.layers()[first].firing.sum() == 0
    assert not torch.allclose(explorer.layers()[explorer.last_layer].drive, before)
    explorer.clear_silenced()
    assert torch.allclose(explorer.layers()[explorer.last_layer].drive, before)


def test_views_use_hard_gates_and_leave_the_model_soft(explorer, models):
    gated = models["dopamine 45°"]
    assert not any(g.hard for g in gates_of(gated))
    with hardened(gated):
        expected = predict_logits(gated, explorer.inputs())[0]
    assert torch.allclose(explorer.logits(), expected)
    assert not any(g.hard for g in gates_of(gated))
    view = explorer.layers()["hidden1"]
    assert set(view.gate.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(view.gated_off, (view.drive > 0) & (view.drive <= gated.hidden["hidden1"].gate.threshold))
    assert torch.equal(view.gain, gated.hidden["hidden1"].gate.gain)
    assert explorer.layers()["hidden1"].gate is not None
    explorer.model_name = "frozen"
    assert explorer.layers()["hidden1"].gate is None and not explorer.layers()["hidden1"].gated_off.any()


def test_exact_contributions_agree_with_captum(explorer):
    captum = pytest.importorskip("captum.attr")
    for name in ("frozen", "dopamine 45°", "lora"):
        explorer.model_name = name
        model = explorer.model
        with hardened(model):
            lgxa = captum.LayerGradientXActivation(model, model.hidden[explorer.last_layer])
            for c in (explorer.prediction, (explorer.prediction + 1) % 10):
                theirs = lgxa.attribute(explorer.inputs().requires_grad_(True), target=c)[0]
                ours, _ = explorer.contributions(c)
                assert torch.allclose(ours, theirs.detach(), atol=1e-5), name


@pytest.mark.parametrize("layer", ["hidden1", "hidden2"])
def test_receptive_field_is_the_local_gradient_of_the_drive(explorer, layer):
    model = explorer.model
    x = explorer.inputs().requires_grad_(True)
    drive = {}
    handle = model.hidden[layer].linear.register_forward_hook(lambda m, i, o: drive.setdefault("z", o))
    with hardened(model):
        model(x)
    handle.remove()
    for neuron in (0, 5):
        grad, = torch.autograd.grad(drive["z"][0, neuron], x, retain_graph=True)
        assert torch.allclose(explorer.receptive_field(layer, neuron), grad.reshape(28, 28), atol=1e-5)
    if layer == "hidden1":
        assert torch.equal(explorer.receptive_field(layer, 5).flatten(), model.hidden["hidden1"].linear.weight[5])
    assert input_patterns(model, explorer.inputs(), layer).shape == (model.hidden[layer].width, 784)


def test_navigation(explorer):
    explorer.digit_index = 0
    labels = explorer.labels
    i = explorer.next_digit(7)
    assert labels[i] == 7 and not (labels[1:i] == 7).any()
    assert explorer.next_digit(7) > i
    explorer.digit_index = len(labels) - 1
    assert explorer.next_digit(int(labels[0])) == 0  # wraps around
    explorer.model_name = "frozen"
    j = explorer.next_mistake()
    assert explorer.prediction != explorer.label and explorer.digit_index == j


def test_bad_state_is_refused(explorer):
    with pytest.raises(ValueError, match="digit_index"):
        explorer.digit_index = 10_000
    with pytest.raises(ValueError, match="unknown model"):
        explorer.model_name = "dopamine 90°"
    with pytest.raises(ValueError, match=r"neuron must be in \[0, 24\)"):
        explorer.silence("hidden2", 24)
    with pytest.raises(ValueError, match="unknown hidden layer"):
        explorer.silence("hidden3", 0)
    with pytest.raises(TypeError, match="angle_deg"):
        explorer.angle_deg = float("nan")
    with pytest.raises(ValueError, match="at least one model"):
        AttributionExplorer({})


def test_gradient_x_activation_is_exact_on_the_last_layer_only_locally_on_the_first(explorer):
    c = explorer.prediction
    contrib, _ = explorer.contributions(c)
    assert torch.allclose(explorer.gradient_x_activation(explorer.last_layer, c), contrib, atol=1e-5)
    gxa = explorer.gradient_x_activation("hidden1", c)
    fired = torch.nonzero(explorer.layers()["hidden1"].firing).flatten().tolist()
    effects = explorer.silencing_effects("hidden1", fired, c)
    on_before = explorer.layers()["hidden2"].firing
    same_gates = []
    for n in fired:
        explorer.silence("hidden1", n)
        same_gates.append(torch.equal(explorer.layers()["hidden2"].firing, on_before))
        explorer.clear_silenced()
    same_gates = torch.tensor(same_gates)
    assert same_gates.any()
    # where no second-layer neuron switches, the drop is exactly gradient x activation
    assert torch.allclose(effects[same_gates], gxa[fired][same_gates], atol=1e-4)


def test_margin_parts_add_up_to_the_margin(explorer):
    logits = explorer.logits()
    rival = int(logits.topk(2).indices[1])
    parts = explorer.margin_parts(rival, k=3)
    assert parts["pred"] == explorer.prediction and len(parts["neurons"]) == len(set(parts["neurons"])) == 6
    assert parts["values"] == sorted(parts["values"], reverse=True)
    total = sum(parts["values"]) + parts["rest"] + parts["bias"]
    assert abs(total - parts["margin"]) < 1e-5 and parts["margin"] > 0
    # the other neurons that fire: those whose output is not 0 on this input
    h = explorer.contributions(parts["pred"])[0] != 0
    h[parts["neurons"]] = False
    assert parts["n_rest_firing"] == int(h.sum()) < parts["n_rest"]
    with pytest.raises(ValueError, match="k must be between"):
        explorer.margin_parts(rival, k=100)
