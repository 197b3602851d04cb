"""The one recipe every chapter trains with: data splits, budget, foundations and the settings grid.

    from dopatut.study.protocol import PROTOCOL
    PROTOCOL.epochs                      # every method trains this many epochs over the 50,000 "train" images
    PROTOCOL.grid("lora")                # the settings tried on the validation split
    PROTOCOL.config("lora", {"lr": 3e-3, "alpha": 16.0}, seed=0)   # -> (TrainConfig, method kwargs)

Every method gets the same budget: `epochs` passes over the 50,000 training images at batch size 128,
with Adam. Its settings (learning rate; LoRA's alpha at rank 4; the gate temperature schedule) are chosen
from `grids` by their accuracy on the validation split, the last 10,000 of MNIST's training images, which
no model ever trains on (`compare.select`). The test set is only read to report the chosen settings.
The budget comes from the learning curves on the validation split: the last epoch of the foundation's mean
validation curve adds less than `margin` (chapter 2 asserts it); chapter 5 shows how flat each method's
curve is after `epochs` (nearly flat on the paper's foundation, still climbing on the upright one), and, from every
method trained for 10 epochs on three seeds (dopatut.study.budget), which of Dopamine's verdicts would move with the budget.
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field

from ..foundations.checks import check_seeds  # noqa: F401  (re-exported: protocol.check_seeds)
from ..methods.builtin import GATE_METHODS, LORA_RANK, METHODS  # noqa: F401  (re-exported: protocol.GATE_METHODS, ...)
from ..methods.registry import get_method
from ..training.train import TrainConfig

# every method's settings grid, as its registration defines it (dopatut.methods.builtin, dopatut.methods.registry)
GRIDS = {m: get_method(m).grid for m in METHODS if get_method(m).grid is not None}


@dataclass(frozen=True)
class Protocol:
    epochs: int = 3  # every method, over the 50,000 training images
    foundation_epochs: int = 5  # the foundation, over its 50,000-image mixture
    batch_size: int = 128
    foundation_lr: float = 1e-3
    seeds: tuple[int, ...] = tuple(range(10))  # each seed: its own foundation, initialisation and data order
    selection_seed: int = 0  # settings are chosen on this seed's foundation and run
    margin: float = 0.002  # a last epoch that adds less validation accuracy than this: the curve has flattened
    foundations: dict = field(default_factory=lambda: {"mixture": (0.0, 45.0), "upright": (0.0,)})
    grids: dict = field(default_factory=lambda: GRIDS)

    def __post_init__(self):
        for name in ("epochs", "foundation_epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        check_seeds(self.seeds)

    def grid(self, method: str) -> list[dict]:
        """Every setting of `method`'s grid, as dicts such as {"lr": 0.01, "temperature": (1.0, 0.1)}."""
        spec = get_method(method)
        if spec.grid is None:
            return [{}]
        axes = self.grids.get(method, spec.grid)  # a method a reader registered: its own grid
        empty = [name for name, values in axes.items() if not values]
        if empty:
            raise ValueError(f"the grid of {method!r} has no values for {empty}")
        return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]

    def config(self, method: str, setting: dict, seed: int) -> tuple[TrainConfig, dict]:
        """The TrainConfig (the budget, lr and seed) and apply_method keyword arguments (the method's own settings:
        the gates' temperature schedule, LoRA's alpha and rank) of one setting of `method`."""
        spec = get_method(method)
        options = tuple(o for o in spec.options if o not in ("targets", *spec.fixed))
        unknown = set(setting) - {"lr", *options}
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)} for {method!r}; expected lr"
                             + "".join(f", {o}" for o in options))
        train = TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=setting.get("lr", 1e-3), seed=seed)
        return train, {**spec.fixed, **{k: v for k, v in setting.items() if k in options}}

    def foundation_config(self, seed: int = 0) -> TrainConfig:
        return TrainConfig(epochs=self.foundation_epochs, batch_size=self.batch_size, lr=self.foundation_lr,
                           seed=seed)

    def to_dict(self) -> dict:
        return {**asdict(self), "seeds": list(self.seeds)}


PROTOCOL = Protocol()
