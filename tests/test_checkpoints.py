import pytest
import torch

from dopatut.foundations.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from dopatut.methods.gate import GateSet, load_gates, save_gates
from dopatut.foundations.model import FoundationMLP, MLPConfig


def shapes(model):
    return {k: v.shape for k, v in model.state_dict().items()}


def test_round_trip_and_no_temporary_files_left(tmp_path, small_model):
    path = save_checkpoint(tmp_path / "f.pt", small_model.state_dict(), "foundation", {"hidden": [32, 16]}, {"acc": 0.9})
    payload = load_checkpoint(path, "foundation", {"hidden": [32, 16]}, shapes(small_model))
    assert payload["meta"] == {"acc": 0.9}
    assert all(torch.equal(v, small_model.state_dict()[k]) for k, v in payload["state"].items())
    assert [p.name for p in tmp_path.iterdir()] == ["f.pt"]


def test_truncated_file_raises_a_clear_error(tmp_path, small_model):
    path = save_checkpoint(tmp_path / "f.pt", small_model.state_dict(), "foundation", {})
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path, "foundation")


def test_changed_tensor_fails_the_checksum(tmp_path, small_model):
    path = save_checkpoint(tmp_path / "f.pt", small_model.state_dict(), "foundation", {})
    payload = torch.load(path, weights_only=True)
    payload["state"]["head.bias"][0] += 1.0
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(path, "foundation")


def test_other_configuration_names_the_difference(tmp_path, small_model):
    path = save_checkpoint(tmp_path / "f.pt", small_model.state_dict(), "foundation", {"hidden": [32, 16], "seed": 0})
    with pytest.raises(CheckpointError, match=r"hidden: expected \[256, 256\], file has \[32, 16\]"):
        load_checkpoint(path, "foundation", {"hidden": [256, 256], "seed": 0})
    with pytest.raises(CheckpointError, match="holds a 'foundation', expected a 'gates'"):
        load_checkpoint(path, "gates")


def test_width_mismatch_names_the_shapes(tmp_path, small_model):
    path = save_checkpoint(tmp_path / "f.pt", small_model.state_dict(), "foundation", {})
    other = FoundationMLP(MLPConfig(hidden=(64, 16)))
    with pytest.raises(CheckpointError, match=r"hidden.hidden1.linear.weight: expected \(64, 784\), file has \(32, 784\)"):
        load_checkpoint(path, "foundation", shapes=shapes(other))


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="not a dopatut checkpoint"):
        load_checkpoint(path, "foundation")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt", "foundation")


def test_gates_save_apart_from_the_base_and_check_the_fit(tmp_path, small_model):
    gates = GateSet.for_model(small_model)
    with torch.no_grad():
        gates["hidden.hidden2.act"].threshold.uniform_()
    path = save_gates(tmp_path / "g.pt", gates, small_model)
    assert path.stat().st_size < 20_000
    loaded = load_gates(path, small_model)
    assert torch.equal(loaded["hidden.hidden2.act"].threshold, gates["hidden.hidden2.act"].threshold)
    with pytest.raises(CheckpointError, match="holds a mode for another model .*\n  hidden.hidden2.act: width 16 in "
                                              "the mode's model, 8 here"):
        load_gates(path, FoundationMLP(MLPConfig(hidden=(32, 8))))
    # partial: only the mode's own places are checked, and they still must fit
    with pytest.raises(CheckpointError, match="gate for 'hidden.hidden2.act' has 16 neurons on axis -1, but the "
                                              "activation's input there has 8"):
        load_gates(path, FoundationMLP(MLPConfig(hidden=(32, 8))), partial=True)
    one = GateSet({"hidden.hidden1.act": gates["hidden.hidden1.act"]})
    path = save_gates(tmp_path / "one.pt", one, small_model)  # a mode on part of the model
    deeper = FoundationMLP(MLPConfig(hidden=(32, 16, 16)))
    with pytest.raises(CheckpointError, match="hidden.hidden3.act: in this model \\(ReLU, 16 neurons\\), not in the mode's"):
        load_gates(path, deeper)
    assert list(load_gates(path, deeper, partial=True)) == ["hidden.hidden1.act"]


def test_tensors_go_through_json_bit_for_bit():
    import json

    from dopatut.foundations.checkpoints import tensors_from_json, tensors_to_json

    tensors = {"a.threshold": torch.randn(3, 4, generator=torch.Generator().manual_seed(0)),
               "b.gain": torch.tensor([1e-38, -0.0, float("inf")])}
    back = tensors_from_json(json.loads(json.dumps(tensors_to_json(tensors))))
    assert list(back) == list(tensors)
    assert all(torch.equal(back[k], v) and back[k].shape == v.shape for k, v in tensors.items())
